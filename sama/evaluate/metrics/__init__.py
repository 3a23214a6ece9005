"""sama.evaluate.metrics"""
