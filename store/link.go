package store

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
)

// Links are one per TheHive object, so a large TheHive means millions of
// them: they are stored in a compact binary form rather than JSON (about a
// third of the size, so a third of the pages to write, fsync and track).
//
//	flags (low nibble: version 1; 0x10: hash stored hex-decoded)
//	kind (index into linkKinds; 0xff: uvarint length + name follows)
//	uvarint id | varint modified | uvarint related_id | uvarint len + hash
const linkVersion = 1

var linkKinds = []string{"", "events", "incident", "indicators"}

var errBadLink = errors.New("malformed link record")

func encodeLink(l Link) []byte {
	b := make([]byte, 0, 48)
	kind := byte(0xff)
	for i, k := range linkKinds {
		if k == l.Kind {
			kind = byte(i)
		}
	}
	hash, hexed := []byte(l.Hash), false
	if raw, err := hex.DecodeString(l.Hash); err == nil && hex.EncodeToString(raw) == l.Hash {
		hash, hexed = raw, true
	}
	flags := byte(linkVersion)
	if hexed {
		flags |= 0x10
	}
	b = append(b, flags, kind)
	if kind == 0xff {
		b = binary.AppendUvarint(b, uint64(len(l.Kind)))
		b = append(b, l.Kind...)
	}
	b = binary.AppendUvarint(b, uint64(max(l.ID, 0)))
	b = binary.AppendVarint(b, l.Modified)
	b = binary.AppendUvarint(b, uint64(max(l.RelatedID, 0)))
	b = binary.AppendUvarint(b, uint64(len(hash)))
	return append(b, hash...)
}

func decodeLink(b []byte) (Link, error) {
	var l Link
	if len(b) < 2 || b[0]&0x0f != linkVersion {
		return l, errBadLink
	}
	hexed := b[0]&0x10 != 0
	kind := b[1]
	b = b[2:]
	uv := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	if int(kind) < len(linkKinds) {
		l.Kind = linkKinds[kind]
	} else {
		n, ok := uv()
		if !ok || n > uint64(len(b)) {
			return l, errBadLink
		}
		l.Kind, b = string(b[:n]), b[n:]
	}
	id, ok := uv()
	if !ok {
		return l, errBadLink
	}
	mod, n := binary.Varint(b)
	if n <= 0 {
		return l, errBadLink
	}
	b = b[n:]
	rel, ok := uv()
	if !ok {
		return l, errBadLink
	}
	hl, ok := uv()
	if !ok || hl != uint64(len(b)) {
		return l, errBadLink
	}
	l.ID, l.Modified, l.RelatedID = int(id), mod, int(rel)
	if hexed {
		l.Hash = hex.EncodeToString(b)
	} else {
		l.Hash = string(b)
	}
	return l, nil
}
