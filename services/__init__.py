"""Operations behind every interface (CLI, REST, Python API, flows): each owns its transaction."""
