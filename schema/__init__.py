"""The Strawberry schema: types, inputs, enums, scalars and connections of the contract."""
