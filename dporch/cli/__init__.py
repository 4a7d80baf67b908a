"""dporch.cli"""
