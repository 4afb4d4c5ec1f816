"""The whole pipeline as processes on real sockets, DNS and buses: the end-to-end tests
(``tests/e2e``) and the benchmarks (``bench/``) both drive Postline through it."""
