"""sama.train"""
