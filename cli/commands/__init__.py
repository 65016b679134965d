"""Operator commands, one module per noun."""
