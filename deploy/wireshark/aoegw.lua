-- Wireshark dissector for the aoegw tunnel's outer messages (docs/protocol.md, section 4).
--
-- Shows each UDP datagram's message: type, version, reserved, indexes, counter, the sizes of the
-- encrypted parts, mac1/mac2. Nothing is decrypted. A message that breaks section 4 (wrong length
-- for its type, version not 1, non-zero reserved bytes, unknown type) is shown as far as it goes
-- and flagged as expert info (severity error); the dissector itself never throws on such bytes.
--
-- Install and use: deploy/wireshark/README.md.

local aoegw = Proto("aoegw", "aoegw tunnel")

local DEFAULT_PORT = 51880

local TYPE_INITIATION = 1
local TYPE_RESPONSE = 2
local TYPE_COOKIE_REPLY = 3
local TYPE_TRANSPORT = 4
local TYPE_ENROLL = 5

local type_names = {
  [TYPE_INITIATION] = "Handshake Initiation",
  [TYPE_RESPONSE] = "Handshake Response",
  [TYPE_COOKIE_REPLY] = "Cookie Reply",
  [TYPE_TRANSPORT] = "Transport Data",
  [TYPE_ENROLL] = "Enrollment Initiation",
}

-- Exact message sizes (section 4); transport data is 32 + n bytes.
local TRANSPORT_MIN = 32
local exact_len = {
  [TYPE_INITIATION] = 148,
  [TYPE_RESPONSE] = 92,
  [TYPE_COOKIE_REPLY] = 64,
  [TYPE_ENROLL] = 164,
}

local TAG_LEN = 16

local f = {
  type = ProtoField.uint8("aoegw.type", "Type", base.DEC, type_names),
  version = ProtoField.uint8("aoegw.version", "Version", base.DEC),
  reserved = ProtoField.uint16("aoegw.reserved", "Reserved", base.HEX),
  sender = ProtoField.uint32("aoegw.sender", "Sender index", base.HEX),
  receiver = ProtoField.uint32("aoegw.receiver", "Receiver index", base.HEX),
  ephemeral = ProtoField.bytes("aoegw.ephemeral", "Unencrypted ephemeral"),
  static = ProtoField.bytes("aoegw.encrypted_static", "Encrypted static"),
  timestamp = ProtoField.bytes("aoegw.encrypted_timestamp", "Encrypted timestamp"),
  enroll_payload = ProtoField.bytes("aoegw.encrypted_payload", "Encrypted payload (timestamp, invite id)"),
  empty = ProtoField.bytes("aoegw.encrypted_empty", "Encrypted empty payload"),
  nonce = ProtoField.bytes("aoegw.nonce", "Nonce"),
  cookie = ProtoField.bytes("aoegw.encrypted_cookie", "Encrypted cookie"),
  mac1 = ProtoField.bytes("aoegw.mac1", "mac1"),
  mac2 = ProtoField.bytes("aoegw.mac2", "mac2"),
  counter = ProtoField.uint64("aoegw.counter", "Counter", base.DEC),
  encrypted_packet = ProtoField.bytes("aoegw.encrypted_packet", "Encrypted packet"),
  encrypted_len = ProtoField.uint32("aoegw.encrypted_len", "Encrypted size (plaintext + tag)", base.DEC),
  plaintext_len = ProtoField.uint32("aoegw.plaintext_len", "Plaintext size", base.DEC),
  keepalive = ProtoField.bool("aoegw.keepalive", "Keepalive"),
  trailing = ProtoField.bytes("aoegw.trailing", "Bytes beyond the message's length"),
  gso_segments = ProtoField.uint32("aoegw.gso.segments", "Messages in this GSO/GRO super-frame", base.DEC),
  gso_size = ProtoField.uint32("aoegw.gso.segment_size", "GSO segment size", base.DEC),
}
aoegw.fields = f

local e = {
  bad_length = ProtoExpert.new("aoegw.bad_length", "Wrong message length for its type", expert.group.MALFORMED,
    expert.severity.ERROR),
  bad_version = ProtoExpert.new("aoegw.bad_version", "Version is not 1", expert.group.PROTOCOL,
    expert.severity.ERROR),
  bad_reserved = ProtoExpert.new("aoegw.bad_reserved", "Reserved bytes are not zero", expert.group.PROTOCOL,
    expert.severity.ERROR),
  bad_type = ProtoExpert.new("aoegw.bad_type", "Unknown message type", expert.group.PROTOCOL,
    expert.severity.ERROR),
  gso = ProtoExpert.new("aoegw.gso", "GSO/GRO super-frame: several datagrams as the host's stack held them",
    expert.group.SEQUENCE, expert.severity.NOTE),
  truncated = ProtoExpert.new("aoegw.truncated", "Capture ends inside the message", expert.group.MALFORMED,
    expert.severity.WARN),
}
aoegw.experts = e

aoegw.prefs.port = Pref.uint("UDP port", DEFAULT_PORT, "UDP port of the aoegw tunnel (`listen` in the gateway's config)")

-- Adds `field` over [off, off+len) when the capture holds those bytes (never throws).
local function add(tree, tvb, field, off, len, le)
  if off + len > tvb:len() then return false end
  if le then tree:add_le(field, tvb(off, len)) else tree:add(field, tvb(off, len)) end
  return true
end

-- Fixed-layout messages: { field, offset, size, little-endian }.
local layouts = {
  [TYPE_INITIATION] = {
    { f.sender, 4, 4, true }, { f.ephemeral, 8, 32 }, { f.static, 40, 32 + TAG_LEN },
    { f.timestamp, 88, 12 + TAG_LEN }, { f.mac1, 116, 16 }, { f.mac2, 132, 16 },
  },
  [TYPE_ENROLL] = {
    { f.sender, 4, 4, true }, { f.ephemeral, 8, 32 }, { f.static, 40, 32 + TAG_LEN },
    { f.enroll_payload, 88, 12 + 16 + TAG_LEN }, { f.mac1, 132, 16 }, { f.mac2, 148, 16 },
  },
  [TYPE_RESPONSE] = {
    { f.sender, 4, 4, true }, { f.receiver, 8, 4, true }, { f.ephemeral, 12, 32 },
    { f.empty, 44, TAG_LEN }, { f.mac1, 60, 16 }, { f.mac2, 76, 16 },
  },
  [TYPE_COOKIE_REPLY] = {
    { f.receiver, 4, 4, true }, { f.nonce, 8, 24 }, { f.cookie, 32, 16 + TAG_LEN },
  },
}

-- One message; returns the text for the Info column.
local function dissect_message(tvb, tree)
  local len = tvb:reported_len()
  local caplen = tvb:len()
  local t = tree:add(aoegw, tvb(), "aoegw tunnel")
  if len < 4 or caplen < 4 then
    t:add_proto_expert_info(e.bad_length, "Message of " .. len .. " bytes is shorter than the 4-byte header")
    return "Runt (" .. len .. " bytes)"
  end
  local mtype = tvb(0, 1):uint()
  local version = tvb(1, 1):uint()
  local reserved = tvb(2, 2):le_uint()
  local name = type_names[mtype] or ("Unknown type " .. mtype)
  t:append_text(", " .. name)
  local ti = t:add(f.type, tvb(0, 1))
  if not type_names[mtype] then ti:add_proto_expert_info(e.bad_type) end
  local vi = t:add(f.version, tvb(1, 1))
  if version ~= 1 then vi:add_proto_expert_info(e.bad_version, "Version " .. version .. ", expected 1") end
  local ri = t:add_le(f.reserved, tvb(2, 2))
  if reserved ~= 0 then ri:add_proto_expert_info(e.bad_reserved) end

  local info = name
  local expect = exact_len[mtype]
  local msg_len = len -- the bytes that belong to the message (the rest is shown as trailing)
  if expect then
    if len ~= expect then
      t:add_proto_expert_info(e.bad_length, name .. " of " .. len .. " bytes, expected " .. expect)
      if len > expect then msg_len = expect end
    end
    for _, l in ipairs(layouts[mtype]) do add(t, tvb, l[1], l[2], l[3], l[4]) end
    if mtype == TYPE_INITIATION or mtype == TYPE_ENROLL then
      if caplen >= 8 then info = info .. ", sender=0x" .. string.format("%08X", tvb(4, 4):le_uint()) end
    elseif mtype == TYPE_RESPONSE then
      if caplen >= 12 then
        info = info .. string.format(", sender=0x%08X, receiver=0x%08X", tvb(4, 4):le_uint(), tvb(8, 4):le_uint())
      end
    elseif caplen >= 8 then
      info = info .. ", receiver=0x" .. string.format("%08X", tvb(4, 4):le_uint())
    end
  elseif mtype == TYPE_TRANSPORT then
    add(t, tvb, f.receiver, 4, 4, true)
    add(t, tvb, f.counter, 8, 8, true)
    if len < TRANSPORT_MIN then
      t:add_proto_expert_info(e.bad_length, name .. " of " .. len .. " bytes, expected at least " .. TRANSPORT_MIN)
    else
      local n = len - TRANSPORT_MIN
      add(t, tvb, f.encrypted_packet, 16, len - 16)
      t:add(f.encrypted_len, len - 16):set_generated()
      t:add(f.plaintext_len, n):set_generated()
      t:add(f.keepalive, n == 0):set_generated()
      if caplen >= 16 then
        info = info .. string.format(", receiver=0x%08X, counter=%s, datalen=%d", tvb(4, 4):le_uint(),
          tostring(tvb(8, 8):le_uint64()), n)
      end
      if n == 0 then info = info .. " (keepalive)" end
    end
  end
  if msg_len < len and msg_len < caplen then add(t, tvb, f.trailing, msg_len, caplen - msg_len) end
  if caplen < len then t:add_proto_expert_info(e.truncated) end
  return info
end

-- A capture taken on a gateway (or forwarded inside one machine) holds UDP GSO/GRO super-frames:
-- transport messages of one session with consecutive counters, each `size` bytes but the last
-- (docs/protocol.md 4.4 makes the length of transport data the datagram's, so nothing else tells
-- where one ends). Returns the segment size when the whole datagram is such a run, else nil.
local function gso_segment_size(tvb)
  local len = tvb:reported_len()
  if len ~= tvb:len() or len < 2 * TRANSPORT_MIN or tvb(0, 4):uint() ~= 0x04010000 then return nil end
  local raw = tvb:raw()
  local head = raw:sub(1, 8)
  local counter = tvb(8, 8):le_uint64()
  local from = TRANSPORT_MIN + 1
  while true do
    local at = raw:find(head, from, true)
    if not at or at + 15 > len then return nil end
    local size = at - 1
    if tvb(size + 8, 8):le_uint64() == counter + 1 then
      for off = 2 * size, len - 1, size do
        local n = off / size
        if len - off < TRANSPORT_MIN or raw:sub(off + 1, off + 8) ~= head
          or tvb(off + 8, 8):le_uint64() ~= counter + n then
          return nil
        end
      end
      return size
    end
    from = at + 1
  end
end

local function dissect(tvb, pinfo, tree)
  pinfo.cols.protocol = "aoegw"
  local size = gso_segment_size(tvb)
  if not size then
    pinfo.cols.info = dissect_message(tvb, tree)
    return tvb:len()
  end
  local len = tvb:len()
  local n = math.ceil(len / size)
  local t = tree:add(aoegw, tvb(), "aoegw tunnel, GSO/GRO super-frame of " .. n .. " messages")
  t:add(f.gso_segments, n):set_generated()
  t:add(f.gso_size, size):set_generated()
  t:add_proto_expert_info(e.gso, n .. " transport messages of " .. size .. " bytes (the last "
    .. (len - (n - 1) * size) .. "); on the wire they are separate datagrams")
  local first
  for off = 0, len - 1, size do
    local info = dissect_message(tvb(off, math.min(size, len - off)):tvb(), tree)
    first = first or info
  end
  pinfo.cols.info = n .. " messages (GSO/GRO), first: " .. first
  return len
end

function aoegw.dissector(tvb, pinfo, tree)
  return dissect(tvb, pinfo, tree)
end

-- Heuristic for other UDP ports: a well-formed header and the exact length of its type.
local function heuristic(tvb, pinfo, tree)
  local len = tvb:reported_len()
  if len < 4 or tvb:len() < 4 then return false end
  local mtype = tvb(0, 1):uint()
  if tvb(1, 1):uint() ~= 1 or tvb(2, 2):uint() ~= 0 then return false end
  if exact_len[mtype] then
    if len ~= exact_len[mtype] then return false end
  elseif mtype ~= TYPE_TRANSPORT or len < TRANSPORT_MIN then
    return false
  end
  dissect(tvb, pinfo, tree)
  pinfo.conversation = aoegw
  return true
end

local udp_port = DissectorTable.get("udp.port")
local registered_port = 0

local function register_port()
  if registered_port ~= 0 then udp_port:remove(registered_port, aoegw) end
  registered_port = aoegw.prefs.port
  if registered_port ~= 0 then udp_port:add(registered_port, aoegw) end
end

function aoegw.prefs_changed()
  if aoegw.prefs.port ~= registered_port then register_port() end
end

register_port()
udp_port:add_for_decode_as(aoegw)
aoegw:register_heuristic("udp", heuristic)
