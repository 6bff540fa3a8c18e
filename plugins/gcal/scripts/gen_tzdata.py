"""Generates src/tzdata.rs from the system's TZif files (tzdata version in
/usr/share/zoneinfo/tzdata.zi): each zone's POSIX TZ footer, plus, for the few zones whose
future transitions no POSIX rule describes (Morocco's Ramadan changes, Palestine's), their
explicit transitions from 2025 to 2040. Also writes test vectors to a second file."""
import os, struct, sys
root = '/usr/share/zoneinfo'
T0, T1 = 1735689600, 2208988800  # 2025-01-01, 2040-01-01

def parse(b):
    def counts(off):
        return struct.unpack('>6l', b[off + 20:off + 44])
    isut, isstd, leap, timecnt, typecnt, charcnt = counts(0)
    off = 44 + timecnt * 5 + typecnt * 6 + charcnt + leap * 8 + isstd + isut
    isut, isstd, leap, timecnt, typecnt, charcnt = counts(off)
    p = off + 44
    times = struct.unpack('>%dq' % timecnt, b[p:p + 8 * timecnt]); p += 8 * timecnt
    idx = b[p:p + timecnt]; p += timecnt
    types = [struct.unpack('>lBB', b[p + 6 * i:p + 6 * i + 6]) for i in range(typecnt)]
    footer = b.rstrip(b'\n').rsplit(b'\n', 1)[-1].decode()
    return [(t, types[i][0]) for t, i in zip(times, idx)], footer

zones = {}
for dp, dn, fn in os.walk(root):
    rel = os.path.relpath(dp, root)
    if rel.split('/')[0] in ('posix', 'right'):
        continue
    for f in fn:
        b = open(os.path.join(dp, f), 'rb').read()
        if not b.startswith(b'TZif') or b[4:5] < b'2':
            continue
        name = f if rel == '.' else rel + '/' + f
        if name in ('posixrules', 'localtime', 'Factory'):
            continue
        zones[name] = parse(b)

version = open(os.path.join(root, 'tzdata.zi')).readline().split()[-1]
irregular = ('Africa/Casablanca', 'Africa/El_Aaiun', 'Asia/Gaza', 'Asia/Hebron')
out = []
out.append('//! The IANA time zones as of tzdata %s, generated from the TZif files of that release by\n' % version)
out.append('//! `scripts/gen_tzdata.py` (`python3 scripts/gen_tzdata.py src/tzdata.rs vectors.txt`): each name\n')
out.append('//! with the POSIX TZ rule its file ends with, which describes every time after its last listed transition; and,\n')
out.append('//! for the zones whose coming changes no such rule describes (Morocco\'s Ramadan hours,\n')
out.append('//! Palestine\'s), their listed transitions from 2025 to 2040. Links (`US/Eastern`) are\n')
out.append('//! names of their own. A uniform table: sorted by name, for a binary search.\n\n')
out.append('/// The tzdata release this table was made from.\npub const VERSION: &str = "%s";\n\n' % version)
out.append('/// `(name, POSIX TZ rule)`, sorted by name.\npub const ZONES: &[(&str, &str)] = &[\n')
for name in sorted(zones):
    out.append('    ("%s", "%s"),\n' % (name, zones[name][1]))
out.append('];\n\n')
out.append('/// `(name, [(unix seconds, UTC offset in seconds from then)])`: the listed transitions of the\n')
out.append('/// zones no POSIX rule describes, 2025 to 2040; after the last, the zone\'s rule applies.\n')
out.append('pub const LISTED: &[(&str, &[(i64, i32)])] = &[\n')
for name in sorted(irregular):
    tr = [(t, o) for t, o in zones[name][0] if T0 <= t < T1]
    out.append('    (\n        "%s",\n        &[\n' % name)
    for t, o in tr:
        out.append('            (%d, %d),\n' % (t, o))
    out.append('        ],\n    ),\n')
out.append('];\n')
open(sys.argv[1], 'w').write(''.join(out))

# Test vectors: every listed transition 2026-2028 of some zones, and (for a full check) all.
sample = sys.argv[3].split(',') if len(sys.argv) > 3 else None
vec = []
for name in sorted(zones):
    if sample and name not in sample:
        continue
    for t, o in zones[name][0]:
        if 1767225600 <= t < 1861920000 and t != 2147483647:
            vec.append('    ("%s", %d, %d),\n' % (name, t, o))
open(sys.argv[2], 'w').write(''.join(vec))
print(len(zones), len(vec))
