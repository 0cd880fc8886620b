"""HTTP handlers, one module per API area; they parse, call the service and serialize."""
