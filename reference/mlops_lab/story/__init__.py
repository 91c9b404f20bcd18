"""The reference story: `make demo` in five acts, its plots and report, and the same story on kind."""
