"""State-changing operations: each takes an open transaction and a caller, and checks both.

Every statement that touches an existing row locks it under the caller's read predicate, so a row
the caller may not see is ``NOT_FOUND``; ``expectedVersion`` is compared under that lock, so of two
writers holding the same version exactly one wins.
"""
