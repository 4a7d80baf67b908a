"""DPLang: lexer, parser, checker and compiler to Python (no Dask, files or sockets here)."""
