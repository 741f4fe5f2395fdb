"""Plotly figures (one colour per group everywhere) and the standalone HTML report. Figures take the tidy
tables of :mod:`fairlin_core.audits` and :mod:`fairlin_core.toy` and compute nothing of their own."""
