"""Unit tests of the keepalived.conf language: lexer, statement tree, keyword tables and model."""
