"""sama.data.synthetic"""
