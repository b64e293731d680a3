"""Where a collection's text comes from: sources listed, items read, bytes parsed.

- ``listing``: what a folder or URL source lists, and how an item's bytes are read
- ``fetch``: HTTP(S) fetching that refuses private addresses (SSRF), redirects included
- ``parsers``: bytes to documents (Markdown, plain text, HTML, PDF, JSON Lines)
- ``html_blocks``: HTML to blocks with the standard library's parser
"""
