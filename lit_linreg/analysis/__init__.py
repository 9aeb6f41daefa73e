"""Analysis: exact baselines (OLS, LAD), the end-of-run report, and the figures as pure functions."""
