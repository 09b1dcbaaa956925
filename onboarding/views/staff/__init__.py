"""The firm's pages (/estudio/<tenant_slug>/…): dashboard, CSV export, job detail and evidence,
invitations, re-runs, settings, team and audit log.

Thin views: every one goes through `staff_view`, which sends anonymous users to the login page and
resolves the member's role in the tenant of the URL with an access helper (404 for non-members and
for roles that may not use the page) *before* looking at the HTTP method, so another tenant's URLs
answer 404 to every method. Objects are then fetched through tenant-filtered selectors, so another
tenant's ids are 404 too. Writes go through services; their refusals are shown in Spanish.
"""
