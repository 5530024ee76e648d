"""Storage: the layout of distribution 2.x on top of a byte-and-path driver."""
