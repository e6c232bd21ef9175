"""Hand a run over: export it (`export`), serve it over HTTP (`app`, `batching`, `metrics`) and
load-test the server (`loadtest`)."""
