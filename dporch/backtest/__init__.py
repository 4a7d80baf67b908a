"""Backtests: the trading engine, metrics, the Dask job and the report."""
