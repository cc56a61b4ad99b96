"""What a dripline message is: codec, chunks, return codes, errors, specifiers. Sans-I/O: no sockets, clock, environment or registry reads; what it needs is handed in."""
