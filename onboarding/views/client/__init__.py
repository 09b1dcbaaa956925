"""Views of the client side: signup, the company page, the certificate wizard (upload → review →
consent), the live status page of a job, and password reset.

Thin views: reads come from `onboarding.selectors.client`, writes from `onboarding.services`. A
company or job that is not the user's own — another client's, another firm's, or one that does not
exist — is a 404, also for anonymous visitors (who are offered the login page on it).
"""
