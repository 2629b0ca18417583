-- Room settings (issue 17). A room has a topic, shown under its name, and remembers the code it
-- had before its last rotation: its members' open pages and links still find it by that code
-- (a 308 to the new one), nobody else does.
ALTER TABLE rooms ADD COLUMN topic TEXT NOT NULL DEFAULT '';
ALTER TABLE rooms ADD COLUMN previous_code TEXT;
CREATE INDEX rooms_by_previous_code ON rooms (previous_code) WHERE previous_code IS NOT NULL;

-- System lines ("ada renamed the room to …") are events of the room's sequence like messages:
-- `kind` says which a row is, `action` describes a system line (JSON: what changed, whom it
-- concerns, and the room's heading after it). `body` holds its sentence, for previews.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text'
    CHECK (kind IN ('text', 'system'));
ALTER TABLE messages ADD COLUMN action TEXT;
