"""One thin module per DVC stage: read params, call the core, write exactly the declared outs."""
