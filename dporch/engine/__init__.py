"""Execution engines over compiled DPLang programs: batch (whole input) and streaming."""
