"""Rules that are not GraphQL-specific and do no I/O: who may read what (SQL predicates), the
record workflow, attachment and input rules, the audit trail's content, opaque ids, errors."""
