"""Inbound email: an aiosmtpd server that turns mail to `agent-<id>@MAIL_DOMAIN` into events.

`handler` (RCPT/DATA decisions and the InboundMessage record), `mime` (parsing and
threading), `quotes` and `html_text` (readable text), `server` (the SMTP protocol object
and its limits), `main` (`run(settings)`, what `openclaw-saas run smtp` starts).
"""
