"""End-to-end harness: a whole Postline cluster on real sockets, DNS and buses."""
