"""Load benchmarks of medrec (and of PostGraphile 4 on the same data): ``make bench``."""
