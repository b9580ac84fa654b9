"""What the tests, the benchmark and the chaos tools share: a dev server, waiting, JSON logs."""
