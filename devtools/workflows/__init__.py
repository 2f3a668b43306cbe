"""UI-format workflows: the format (convert, validate, schema snapshot), the builder, one module per technique."""
