"""sama.data"""
