"""sama.evaluate"""
