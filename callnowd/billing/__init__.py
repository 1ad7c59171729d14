"""Rates, costs, budgets and charges."""
