"""The whole product as users take it: README commands, distributed runs, the web UI in a browser, packaging,
the zero-code commands, host checks, exports and import effects, the architecture map, network faults."""
