"""The SQL of session-sync (`streams.sessions.store`): one event's statements, then the
set-based statements of a batch (COPYed into the temporary `session_batch`, then applied
from it). Parameters are psycopg's named `%(name)s` placeholders."""

# -- one event --------------------------------------------------------------------------

NEW_SESSION = """
INSERT INTO sessions (tenant_id, session_id, channel, started_at, last_message_at, message_count)
VALUES (%(tenant_id)s, %(session_id)s, %(channel)s, %(at)s, %(at)s, 0)
ON CONFLICT (tenant_id, session_id) DO NOTHING
RETURNING id
"""

TOUCH_SESSION = """
UPDATE sessions
SET started_at = LEAST(started_at, %(at)s), last_message_at = GREATEST(last_message_at, %(at)s)
WHERE tenant_id = %(tenant_id)s AND session_id = %(session_id)s
"""

NEW_MESSAGE = """
INSERT INTO messages (event_id, tenant_id, session_id, role, content, status, token_count,
                      input_tokens, output_tokens, in_reply_to, created_at, metadata)
SELECT %(event_id)s, %(tenant_id)s::uuid, %(session_id)s, %(role)s, %(text)s, %(status)s,
       COALESCE(%(token_count)s::int, reply.input_tokens),
       COALESCE(%(input_tokens)s::int, reply.input_tokens),
       %(output_tokens)s::int, %(in_reply_to)s, %(at)s::timestamptz, %(metadata)s::jsonb
FROM (SELECT 1) AS one
LEFT JOIN messages reply  -- the reply arrived first: take its prompt tokens now
  ON %(role)s = 'user' AND reply.event_id = 'reply:' || %(event_id)s
  AND reply.in_reply_to = %(event_id)s AND reply.tenant_id = %(tenant_id)s::uuid
ON CONFLICT (event_id) DO NOTHING
RETURNING id
"""

FILL_TOKENS = """
UPDATE messages
SET input_tokens = COALESCE(input_tokens, %(input_tokens)s),
    output_tokens = COALESCE(output_tokens, %(output_tokens)s),
    token_count = COALESCE(token_count, %(token_count)s)
WHERE event_id = %(event_id)s
  AND ((input_tokens IS NULL AND %(input_tokens)s::bigint IS NOT NULL)
    OR (output_tokens IS NULL AND %(output_tokens)s::bigint IS NOT NULL))
"""

RELEASE = """
UPDATE messages SET status = 'admitted'
WHERE event_id = %(event_id)s AND role = 'user' AND status = 'held'
RETURNING id
"""

PROMPT_TOKENS = """
UPDATE messages
SET input_tokens = %(input_tokens)s, token_count = COALESCE(token_count, %(input_tokens)s)
WHERE event_id = %(in_reply_to)s AND tenant_id = %(tenant_id)s AND input_tokens IS NULL
"""

COUNT_MESSAGES = """
UPDATE sessions
SET message_count = (SELECT count(*) FROM messages m
                     WHERE m.tenant_id = %(tenant_id)s AND m.session_id = %(session_id)s)
WHERE tenant_id = %(tenant_id)s AND session_id = %(session_id)s
"""

STATS = """
INSERT INTO session_stats (tenant_id, period, channel, session_count, message_count)
VALUES (%(tenant_id)s, %(period)s, %(channel)s, %(sessions)s, %(messages)s)
ON CONFLICT (tenant_id, period, channel) DO UPDATE
SET session_count = session_stats.session_count + EXCLUDED.session_count,
    message_count = session_stats.message_count + EXCLUDED.message_count
"""

# -- a batch in one transaction ---------------------------------------------------------

# One per connection, emptied at every commit.
BATCH_TABLE = """
CREATE TEMPORARY TABLE IF NOT EXISTS session_batch (
  ord           INT NOT NULL,
  event_id      TEXT NOT NULL,
  tenant_id     UUID NOT NULL,
  session_id    TEXT NOT NULL,
  channel       TEXT NOT NULL,
  at            TIMESTAMPTZ NOT NULL,
  role          TEXT NOT NULL,
  content       TEXT,
  status        TEXT NOT NULL,
  token_count   INT,
  input_tokens  INT,
  output_tokens INT,
  in_reply_to   TEXT,
  model         TEXT
) ON COMMIT DELETE ROWS
"""

BATCH_COPY = """
COPY session_batch (ord, event_id, tenant_id, session_id, channel, at, role, content, status,
                    token_count, input_tokens, output_tokens, in_reply_to, model) FROM STDIN
"""

BATCH_SESSIONS = """
INSERT INTO sessions (tenant_id, session_id, channel, started_at, last_message_at, message_count)
SELECT tenant_id, session_id, (array_agg(channel ORDER BY ord))[1], min(at), max(at), 0
FROM session_batch GROUP BY tenant_id, session_id ORDER BY tenant_id, session_id
ON CONFLICT (tenant_id, session_id) DO NOTHING
RETURNING tenant_id::text, session_id
"""

BATCH_MESSAGES = """
INSERT INTO messages (event_id, tenant_id, session_id, role, content, status, token_count,
                      input_tokens, output_tokens, in_reply_to, created_at, metadata)
SELECT b.event_id, b.tenant_id, b.session_id, b.role, b.content, b.status,
       COALESCE(b.token_count, reply.input_tokens), COALESCE(b.input_tokens, reply.input_tokens),
       b.output_tokens, b.in_reply_to, b.at,
       CASE WHEN b.model <> '' THEN jsonb_build_object('model', b.model) END
FROM (SELECT DISTINCT ON (event_id) * FROM session_batch ORDER BY event_id, ord) AS b
LEFT JOIN messages reply  -- a reply stored earlier: take its prompt tokens now
  ON b.role = 'user' AND reply.event_id = 'reply:' || b.event_id
  AND reply.in_reply_to = b.event_id AND reply.tenant_id = b.tenant_id
ORDER BY b.ord
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""

BATCH_FILL = """
UPDATE messages m
SET input_tokens = COALESCE(m.input_tokens, f.input_tokens),
    output_tokens = COALESCE(m.output_tokens, f.output_tokens),
    token_count = COALESCE(m.token_count, f.token_count),
    status = CASE WHEN f.release AND m.role = 'user' AND m.status = 'held'
                  THEN 'admitted' ELSE m.status END
FROM (SELECT event_id,
             (array_agg(input_tokens ORDER BY ord) FILTER (WHERE input_tokens IS NOT NULL))[1]
               AS input_tokens,
             (array_agg(output_tokens ORDER BY ord) FILTER (WHERE output_tokens IS NOT NULL))[1]
               AS output_tokens,
             (array_agg(token_count ORDER BY ord) FILTER (WHERE token_count IS NOT NULL))[1]
               AS token_count,
             bool_or(role = 'user' AND status = 'admitted') AS release
      FROM session_batch GROUP BY event_id) AS f
WHERE m.event_id = f.event_id
  AND ((m.input_tokens IS NULL AND f.input_tokens IS NOT NULL)
    OR (m.output_tokens IS NULL AND f.output_tokens IS NOT NULL)
    OR (f.release AND m.role = 'user' AND m.status = 'held'))
"""

BATCH_PROMPT_TOKENS = """
UPDATE messages m
SET input_tokens = r.input_tokens, token_count = COALESCE(m.token_count, r.input_tokens)
FROM (SELECT DISTINCT ON (in_reply_to, tenant_id) in_reply_to, tenant_id, input_tokens
      FROM session_batch
      WHERE role = 'assistant' AND in_reply_to <> '' AND input_tokens IS NOT NULL
      ORDER BY in_reply_to, tenant_id, ord) AS r
WHERE m.event_id = r.in_reply_to AND m.tenant_id = r.tenant_id AND m.input_tokens IS NULL
"""

# the sessions already there: widened to the batch's times; every session that got a
# message: its count recomputed
BATCH_TOUCH_SESSIONS = """
UPDATE sessions s
SET started_at = LEAST(s.started_at, b.first_at),
    last_message_at = GREATEST(s.last_message_at, b.last_at),
    message_count = CASE WHEN b.got_messages
                         THEN (SELECT count(*) FROM messages m
                               WHERE m.tenant_id = s.tenant_id AND m.session_id = s.session_id)
                         ELSE s.message_count END
FROM (SELECT tenant_id, session_id, min(at) AS first_at, max(at) AS last_at,
             bool_or(event_id = ANY(%(inserted)s::text[])) AS got_messages
      FROM session_batch GROUP BY tenant_id, session_id) AS b
WHERE s.tenant_id = b.tenant_id AND s.session_id = b.session_id
  AND (b.got_messages OR (s.started_at, s.last_message_at) IS DISTINCT FROM
       (LEAST(s.started_at, b.first_at), GREATEST(s.last_message_at, b.last_at)))
"""

BATCH_STATS = """
INSERT INTO session_stats (tenant_id, period, channel, session_count, message_count)
SELECT * FROM unnest(%(tenant_id)s::uuid[], %(period)s::date[], %(channel)s::text[],
                     %(sessions)s::int[], %(messages)s::int[])
ORDER BY 1, 2, 3
ON CONFLICT (tenant_id, period, channel) DO UPDATE
SET session_count = session_stats.session_count + EXCLUDED.session_count,
    message_count = session_stats.message_count + EXCLUDED.message_count
"""
