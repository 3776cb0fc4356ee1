-- Sessions are now stored under the SHA-256 of their id; rows stored under plain ids
-- can never be found again, so everyone signs in (or opens their link) once more.
DELETE FROM tower_sessions.session;

-- Bumped when an admin's password changes: sessions signed in under an older epoch
-- are signed out.
ALTER TABLE admins ADD COLUMN password_epoch integer NOT NULL DEFAULT 0;

-- Sign-in attempts are now keyed by an HMAC with a server-side key instead of a bare
-- SHA-256; old rows would never match again.
DELETE FROM admin_login_failures;
CREATE INDEX admin_login_failures_by_pair ON admin_login_failures (email_hash, client_hash, at);

-- A connect link belongs to the first browser that continues with it (the SHA-256 of a
-- random value held in that browser's cookie).
ALTER TABLE links ADD COLUMN claimed_by bytea;
