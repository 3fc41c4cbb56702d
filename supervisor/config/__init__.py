"""The keepalived.conf language (lexer, statement tree, keyword tables) and its typed model."""
