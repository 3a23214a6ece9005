"""sama.serve"""
