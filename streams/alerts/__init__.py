"""Alert mail: quota.alerts → one email per alert to the tenant owner.

- `agent`: the Faust agent (`register`), one alert at a time;
- `mailer`: the alert recorded in PostgreSQL and sent through the SMTP relay once.
"""
