-- What a connect link was made for: where the browser returns in the host product,
-- which providers it offers, whether it goes straight to one, and page or popup.
ALTER TABLE links
    ADD COLUMN return_url text,
    ADD COLUMN providers text[],
    ADD COLUMN provider text,
    ADD COLUMN mode text NOT NULL DEFAULT 'page' CHECK (mode IN ('page', 'popup'));
