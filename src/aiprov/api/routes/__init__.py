"""One router per resource; `aiprov.api.app.ROUTERS` lists the ones the app includes."""
