"""sama.model"""
