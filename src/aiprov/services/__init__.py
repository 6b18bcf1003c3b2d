"""Services: the use cases, over core and ports. No FastAPI, no Typer, plain values in and out."""
