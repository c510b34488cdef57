"""Reports: ``report.json`` is the one source; Markdown, JUnit and HTML are rendered from it."""
