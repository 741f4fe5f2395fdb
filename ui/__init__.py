"""Streamlit widgets shared by several dashboard pages (the engine stays in fairlin_core)."""
