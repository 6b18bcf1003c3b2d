"""Server-rendered pages of the hub (`/models`, `/log`, `/accounts/...`), their templates and static assets.

The pages read through the services the API uses; the browser re-checks the provenance itself
(`static/verify.js`), so nothing a page says about a version's provenance is taken on the server's word.
"""
