"""sama.evaluate.benchmarks"""
