// The wire protocol at the codec level: raft::Message <-> RaftMessage
// conversions, length-prefixed framing, and bad input (each case a test). No
// sockets here; the server tests cover bad input over real connections.

#include <algorithm>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <QTest>

#include "engine/protocol/bytes_field.h"
#include "engine/protocol/convert.h"
#include "engine/protocol/framing.h"
#include "engine/raft/types.h"

using namespace copycat;
using protocol::FrameDecoder;
using protocol::FrameEncoder;

namespace {

const std::vector<raft::MessageType> kAllMessageTypes = {
    raft::MessageType::PreVote,
    raft::MessageType::PreVoteResponse,
    raft::MessageType::Vote,
    raft::MessageType::VoteResponse,
    raft::MessageType::Append,
    raft::MessageType::AppendResponse,
    raft::MessageType::Heartbeat,
    raft::MessageType::HeartbeatResponse,
    raft::MessageType::InstallSnapshot,
    raft::MessageType::InstallSnapshotResponse,
    raft::MessageType::TimeoutNow,
};

const std::vector<raft::ConfigChange::Kind> kAllChangeKinds = {
    raft::ConfigChange::Kind::AddLearner, raft::ConfigChange::Kind::Promote,
    raft::ConfigChange::Kind::AddVoter,   raft::ConfigChange::Kind::Demote,
    raft::ConfigChange::Kind::Remove,
};

// Bytes that are not text: every byte value, including NUL.
std::string binaryBytes(std::size_t size, unsigned seed) {
  std::string out(size, '\0');
  for (std::size_t i = 0; i < size; ++i) out[i] = static_cast<char>((i * 131 + seed) & 0xff);
  return out;
}

// A message of `type` with every field set to a distinct non-default value.
// Only Append carries entries: one of every entry type and change kind.
raft::Message fullMessage(raft::MessageType type) {
  raft::Message m;
  m.type = type;
  m.from = 3;
  m.to = 0xffffffffffffff01ull;
  m.term = 42;
  m.logTerm = 41;
  m.index = 1000;
  m.commit = 999;
  m.reject = true;
  m.hintIndex = 77;
  m.hintTerm = 40;
  m.context = 0x8000000000000001ull;
  m.snapshot.index = 900;
  m.snapshot.term = 39;
  m.snapshot.membership.voters = {1, 3, 5};
  m.snapshot.membership.learners = {2, 0xfffffffffffffff0ull};
  m.snapshot.size = 123456789;
  m.snapshot.checksum = 0xdeadbeefcafef00dull;
  m.offset = 65536;
  m.data = binaryBytes(300, static_cast<unsigned>(type));
  m.done = true;
  if (type == raft::MessageType::Append) {
    raft::Index index = m.index;
    auto add = [&](raft::EntryType entryType, raft::ConfigChange change, std::string data) {
      raft::Entry e;
      e.term = index < 1003 ? 41 : 42;
      e.index = ++index;
      e.type = entryType;
      e.change = change;
      e.data = std::move(data);
      m.entries.push_back(std::move(e));
    };
    add(raft::EntryType::Normal, {}, binaryBytes(64, 1));
    add(raft::EntryType::Noop, {}, {});
    add(raft::EntryType::Normal, {}, {});
    for (auto kind : kAllChangeKinds) add(raft::EntryType::ConfigChange, {kind, 7}, {});
    // A change on a non-ConfigChange entry is meaningless but still carried.
    add(raft::EntryType::Normal, {raft::ConfigChange::Kind::Remove, 9}, "x");
  }
  return m;
}

void compareMessages(const raft::Message& actual, const raft::Message& expected) {
  QCOMPARE(int(actual.type), int(expected.type));
  QCOMPARE(actual.from, expected.from);
  QCOMPARE(actual.to, expected.to);
  QCOMPARE(actual.term, expected.term);
  QCOMPARE(actual.logTerm, expected.logTerm);
  QCOMPARE(actual.index, expected.index);
  QCOMPARE(actual.entries.size(), expected.entries.size());
  for (std::size_t i = 0; i < actual.entries.size(); ++i) {
    QVERIFY2(actual.entries[i] == expected.entries[i], qPrintable(QString::number(i)));
  }
  QCOMPARE(actual.commit, expected.commit);
  QCOMPARE(actual.reject, expected.reject);
  QCOMPARE(actual.hintIndex, expected.hintIndex);
  QCOMPARE(actual.hintTerm, expected.hintTerm);
  QCOMPARE(actual.context, expected.context);
  QVERIFY(actual.snapshot == expected.snapshot);
  QCOMPARE(actual.offset, expected.offset);
  QVERIFY(actual.data == expected.data);
  QCOMPARE(actual.done, expected.done);
}

// Small frames of assorted kinds, for the framing tests.
std::vector<wire::Frame> sampleFrames() {
  std::vector<wire::Frame> frames;
  wire::Frame hello;
  hello.mutable_handshake()->set_protocol_version(protocol::kProtocolVersion);
  hello.mutable_handshake()->set_cluster_id("lab");
  hello.mutable_handshake()->set_kind(wire::PEER_KIND_SERVER);
  hello.mutable_handshake()->set_node_id(2);
  hello.mutable_handshake()->set_address("127.0.0.1:5002");
  frames.push_back(hello);
  frames.push_back(protocol::toFrame(fullMessage(raft::MessageType::Append)));
  wire::Frame command;
  command.mutable_command()->set_request_id(7);
  command.mutable_command()->set_session_id(12);
  command.mutable_command()->set_sequence(1);
  command.mutable_command()->set_type_id(3);
  command.mutable_command()->set_payload(binaryBytes(10, 9));
  frames.push_back(command);
  wire::Frame status;
  status.mutable_status()->set_request_id(8);
  frames.push_back(status);
  return frames;
}

std::string encodeAll(const std::vector<wire::Frame>& frames) {
  FrameEncoder encoder;
  std::string out;
  for (const auto& frame : frames) {
    if (!encoder.encodeTo(frame, out)) qFatal("encodeAll: frame refused");
  }
  return out;
}

bool sameFrame(const wire::Frame& a, const wire::Frame& b) {
  return a.SerializeAsString() == b.SerializeAsString();
}

std::string lengthPrefix(std::uint32_t length) {
  std::string out(4, '\0');
  out[0] = static_cast<char>(length >> 24);
  out[1] = static_cast<char>(length >> 16);
  out[2] = static_cast<char>(length >> 8);
  out[3] = static_cast<char>(length);
  return out;
}

// A frame on the wire whose body is exactly `body`, bypassing the encoder's
// checks.
std::string rawFrame(const std::string& body) {
  return lengthPrefix(static_cast<std::uint32_t>(body.size())) + body;
}

// Converts a RaftMessage that went through encode/decode back to the core.
std::optional<raft::Message> throughWire(const wire::RaftMessage& message, std::string* error) {
  wire::Frame frame;
  *frame.mutable_raft() = message;
  FrameDecoder decoder;
  decoder.feed(FrameEncoder().encode(frame));
  auto decoded = decoder.next();
  if (!decoded || !decoded->has_raft()) qFatal("throughWire: frame lost");
  return protocol::fromWire(std::move(*decoded->mutable_raft()), error);
}

void verifyStuckInError(FrameDecoder& decoder) {
  QVERIFY(decoder.hasError());
  QVERIFY(!decoder.error().empty());
  QCOMPARE(decoder.pendingBytes(), std::size_t{0});
  const auto code = decoder.errorCode();
  const std::string text = decoder.error();
  // Valid frames after the error are ignored: the connection is done.
  decoder.feed(encodeAll(sampleFrames()));
  QVERIFY(!decoder.next().has_value());
  QVERIFY(decoder.hasError());
  QCOMPARE(int(decoder.errorCode()), int(code));
  QCOMPARE(decoder.error(), text);
  QCOMPARE(decoder.pendingBytes(), std::size_t{0});
  const wire::Frame error = decoder.errorFrame();
  QVERIFY(error.has_error());
  QCOMPARE(int(error.error().code()), int(code));
  QCOMPARE(error.error().text(), text);
}

}  // namespace

class ProtocolCodecTest : public QObject {
  Q_OBJECT

 private slots:
  // ---- conversions ----

  void everyMessageTypeRoundTrips_data() {
    QTest::addColumn<int>("type");
    for (auto type : kAllMessageTypes) {
      QTest::newRow(std::string(raft::toString(type)).c_str()) << int(type);
    }
  }

  void everyMessageTypeRoundTrips() {
    QFETCH(int, type);
    const raft::Message original = fullMessage(static_cast<raft::MessageType>(type));

    // Copying conversion, through the framing.
    std::string bytes = FrameEncoder().encode(protocol::toFrame(original));
    QVERIFY(!bytes.empty());
    FrameDecoder decoder;
    decoder.feed(bytes);
    auto frame = decoder.next();
    QVERIFY(frame.has_value());
    QVERIFY(frame->has_raft());
    QCOMPARE(protocol::bodyName(*frame), std::string_view("raft"));
    std::string error;
    const auto copied = protocol::fromWire(frame->raft(), &error);
    QVERIFY2(copied.has_value(), error.c_str());
    compareMessages(*copied, original);

    // Moving conversion, both ways.
    raft::Message movable = original;
    wire::RaftMessage wireMessage;
    protocol::toWire(std::move(movable), wireMessage);
    const auto moved = protocol::fromWire(std::move(wireMessage), &error);
    QVERIFY2(moved.has_value(), error.c_str());
    compareMessages(*moved, original);
  }

  void defaultMessageRoundTrips() {
    raft::Message original;
    original.from = 1;
    original.to = 2;
    wire::RaftMessage wireMessage;
    protocol::toWire(original, wireMessage);
    QVERIFY(!wireMessage.has_snapshot());  // an empty snapshot is not sent
    std::string error;
    const auto back = throughWire(wireMessage, &error);
    QVERIFY2(back.has_value(), error.c_str());
    compareMessages(*back, original);
  }

  void entriesAndSnapshotRoundTripAlone() {
    for (auto kind : kAllChangeKinds) {
      raft::Entry entry{5, 6, raft::EntryType::ConfigChange, {kind, 11}, "abc"};
      wire::Entry wireEntry;
      protocol::toWire(entry, wireEntry);
      const auto back = protocol::fromWire(wireEntry);
      QVERIFY(back.has_value());
      QVERIFY(*back == entry);
    }
    raft::SnapshotMeta meta{10, 2, {{1, 2, 3}, {4}}, 99, 1234};
    wire::SnapshotMeta wireMeta;
    protocol::toWire(meta, wireMeta);
    const auto back = protocol::fromWire(wireMeta);
    QVERIFY(back.has_value());
    QVERIFY(*back == meta);
  }

  void enumMappingsAreBijective() {
    for (auto type : kAllMessageTypes) {
      QCOMPARE(int(*protocol::fromWire(protocol::toWire(type))), int(type));
    }
    for (auto type :
         {raft::EntryType::Normal, raft::EntryType::Noop, raft::EntryType::ConfigChange}) {
      QCOMPARE(int(*protocol::fromWire(protocol::toWire(type))), int(type));
    }
    for (auto kind : kAllChangeKinds) {
      QCOMPARE(int(*protocol::fromWire(protocol::toWire(kind))), int(kind));
    }
    for (auto role : {raft::Role::Follower, raft::Role::PreCandidate, raft::Role::Candidate,
                      raft::Role::Leader}) {
      QCOMPARE(int(*protocol::fromWire(protocol::toWire(role))), int(role));
    }
    QVERIFY(!protocol::fromWire(wire::RAFT_MESSAGE_TYPE_UNSPECIFIED));
    QVERIFY(!protocol::fromWire(wire::ENTRY_TYPE_UNSPECIFIED));
    QVERIFY(!protocol::fromWire(wire::CONFIG_CHANGE_KIND_UNSPECIFIED));
    QVERIFY(!protocol::fromWire(wire::ROLE_UNSPECIFIED));
  }

  // ---- framing ----

  void framesSplitAtEveryByteBoundary() {
    const auto frames = sampleFrames();
    const std::string bytes = encodeAll(frames);
    for (std::size_t split = 0; split <= bytes.size(); ++split) {
      FrameDecoder decoder;
      std::vector<wire::Frame> out;
      decoder.feed(bytes.data(), split);
      while (auto frame = decoder.next()) out.push_back(std::move(*frame));
      decoder.feed(bytes.data() + split, bytes.size() - split);
      while (auto frame = decoder.next()) out.push_back(std::move(*frame));
      QVERIFY2(!decoder.hasError(), decoder.error().c_str());
      QCOMPARE(out.size(), frames.size());
      for (std::size_t i = 0; i < frames.size(); ++i) QVERIFY(sameFrame(out[i], frames[i]));
      QCOMPARE(decoder.pendingBytes(), std::size_t{0});
    }
  }

  void framesFedOneByteAtATime() {
    const auto frames = sampleFrames();
    const std::string bytes = encodeAll(frames);
    FrameDecoder decoder;
    std::vector<wire::Frame> out;
    for (std::size_t i = 0; i < bytes.size(); ++i) {
      decoder.feed(bytes.data() + i, 1);
      wire::Frame frame;
      while (decoder.next(frame)) out.push_back(frame);
    }
    QVERIFY(!decoder.hasError());
    QCOMPARE(out.size(), frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i) QVERIFY(sameFrame(out[i], frames[i]));
    QCOMPARE(decoder.framesDecoded(), std::uint64_t{frames.size()});
  }

  void manyFramesInOneBuffer() {
    std::vector<wire::Frame> frames;
    for (int i = 0; i < 2000; ++i) {
      raft::Message m = fullMessage(kAllMessageTypes[i % kAllMessageTypes.size()]);
      m.term = 42 + static_cast<raft::Term>(i);
      frames.push_back(protocol::toFrame(m));
    }
    const std::string bytes = encodeAll(frames);
    FrameDecoder decoder;
    decoder.feed(bytes);
    std::size_t count = 0;
    while (auto frame = decoder.next()) {
      QVERIFY(sameFrame(*frame, frames[count]));
      ++count;
    }
    QVERIFY(!decoder.hasError());
    QCOMPARE(count, frames.size());
    QCOMPARE(decoder.pendingBytes(), std::size_t{0});
  }

  // Big frames in odd-sized reads, so that the decoder compacts its buffer
  // while holding a partial frame.
  void largeFramesInOddChunks() {
    std::vector<wire::Frame> frames;
    for (int i = 0; i < 12; ++i) {
      raft::Message m = fullMessage(raft::MessageType::InstallSnapshot);
      m.offset = static_cast<std::uint64_t>(i);
      m.data = binaryBytes(static_cast<std::size_t>(50'000 + i * 20'011), static_cast<unsigned>(i));
      frames.push_back(protocol::toFrame(std::move(m)));
    }
    const std::string bytes = encodeAll(frames);
    FrameDecoder decoder;
    std::size_t count = 0;
    const std::size_t chunks[] = {1, 7, 4093, 65536, 100'003, 3};
    std::size_t position = 0;
    for (std::size_t c = 0; position < bytes.size(); ++c) {
      const std::size_t size = std::min(chunks[c % std::size(chunks)], bytes.size() - position);
      decoder.feed(bytes.data() + position, size);
      position += size;
      while (auto frame = decoder.next()) {
        QVERIFY(count < frames.size());
        QVERIFY(sameFrame(*frame, frames[count]));
        ++count;
      }
      // At most one partial frame stays buffered.
      QVERIFY(decoder.pendingBytes() < 400'000);
    }
    QVERIFY(!decoder.hasError());
    QCOMPARE(count, frames.size());
    QCOMPARE(decoder.pendingBytes(), std::size_t{0});
  }

  void encoderRefusesWhatDecodersReject() {
    FrameEncoder encoder(1024);
    QVERIFY(encoder.encode(wire::Frame{}).empty());  // no body
    wire::Frame big;
    big.mutable_command()->set_payload(std::string(2000, 'x'));
    QVERIFY(encoder.encode(big).empty());
    std::string out = "kept";
    QVERIFY(!encoder.encodeTo(big, out));
    QCOMPARE(out, std::string("kept"));
    wire::Frame small;
    small.mutable_status()->set_request_id(1);
    const std::string bytes = encoder.encode(small);
    QCOMPARE(bytes.size(), protocol::kLengthPrefixBytes + small.ByteSizeLong());
    QCOMPARE(bytes.substr(0, 4), lengthPrefix(static_cast<std::uint32_t>(small.ByteSizeLong())));
  }

  void maximumIsConfigurablePerDecoder() {
    wire::Frame frame;
    frame.mutable_command()->set_payload(std::string(500, 'x'));
    const std::string bytes = FrameEncoder().encode(frame);
    const std::size_t size = bytes.size() - protocol::kLengthPrefixBytes;

    FrameDecoder exact(size);
    exact.feed(bytes);
    QVERIFY(exact.next().has_value());
    QVERIFY(!exact.hasError());

    FrameDecoder tight(size - 1);
    tight.feed(bytes);
    QVERIFY(!tight.next().has_value());
    QCOMPARE(int(tight.errorCode()), int(wire::ERROR_CODE_FRAME_TOO_LARGE));
    QCOMPARE(FrameDecoder().maxFrameBytes(), protocol::kMaxFrameBytes);
  }

  // prepare()/commit() as a socket uses them: room for what is available,
  // then fewer bytes than asked (short reads, empty reads), in odd sizes.
  void framesReadInPlaceWithShortReads() {
    std::vector<wire::Frame> frames = sampleFrames();
    for (int i = 0; i < 6; ++i) {
      raft::Message m = fullMessage(raft::MessageType::InstallSnapshot);
      m.data = binaryBytes(static_cast<std::size_t>(70'001 + i * 9'973), static_cast<unsigned>(i));
      frames.push_back(protocol::toFrame(std::move(m)));
    }
    const std::string bytes = encodeAll(frames);
    FrameDecoder decoder;
    std::vector<wire::Frame> out;
    const std::size_t asked[] = {1, 4096, 65536, 3, 200'000};
    const std::size_t given[] = {1, 17, 0, 3, 150'001};
    std::size_t position = 0;
    for (std::size_t c = 0; position < bytes.size(); ++c) {
      const std::size_t room = asked[c % std::size(asked)];
      const std::size_t size =
          std::min({given[c % std::size(given)], room, bytes.size() - position});
      char* into = decoder.prepare(room);
      std::copy_n(bytes.data() + position, size, into);
      decoder.commit(size);
      position += size;
      wire::Frame frame;
      while (decoder.next(frame)) out.push_back(frame);
      QVERIFY(decoder.pendingBytes() < 200'000);
    }
    QVERIFY(!decoder.hasError());
    QCOMPARE(out.size(), frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i) QVERIFY(sameFrame(out[i], frames[i]));
    QCOMPARE(decoder.pendingBytes(), std::size_t{0});
  }

  void badInputReadInPlaceIsDiscarded() {
    FrameDecoder decoder;
    const std::string garbage = rawFrame(std::string(16, '\xff'));
    std::copy(garbage.begin(), garbage.end(), decoder.prepare(garbage.size()));
    decoder.commit(garbage.size());
    QVERIFY(!decoder.next().has_value());
    QCOMPARE(int(decoder.errorCode()), int(wire::ERROR_CODE_MALFORMED_FRAME));
    // Bytes read after the error are dropped, not buffered.
    const std::string valid = encodeAll(sampleFrames());
    std::copy(valid.begin(), valid.end(), decoder.prepare(valid.size()));
    decoder.commit(valid.size());
    QCOMPARE(decoder.pendingBytes(), std::size_t{0});
    QVERIFY(!decoder.next().has_value());
    verifyStuckInError(decoder);
  }

  // ---- one bytes field read and written in place (snapshots) ----

  // appendBytesField() after the other fields gives what protobuf serializes;
  // bytesFieldSize() is what it appends, across varint length boundaries.
  void bytesFieldAppendsWhatProtobufWrites() {
    for (const std::size_t size :
         {std::size_t{0}, std::size_t{1}, std::size_t{127}, std::size_t{128}, std::size_t{16'383},
          std::size_t{16'384}, std::size_t{2'097'152}}) {
      wire::Entry entry;
      entry.set_term(7);
      entry.set_index(300);
      entry.set_type(wire::ENTRY_TYPE_NORMAL);
      std::string bytes = entry.SerializeAsString();
      const std::size_t before = bytes.size();
      const std::string data = binaryBytes(size, 5);
      protocol::appendBytesField(bytes, wire::Entry::kDataFieldNumber, data);
      QCOMPARE(bytes.size() - before,
               protocol::bytesFieldSize(wire::Entry::kDataFieldNumber, size));
      entry.set_data(data);
      QVERIFY(bytes == entry.SerializeAsString());
    }
  }

  void bytesFieldSplitsWhatProtobufParses() {
    wire::Entry entry;
    entry.set_term(9);
    entry.set_index(1'000'000);
    entry.set_type(wire::ENTRY_TYPE_CONFIG_CHANGE);
    entry.set_change_kind(wire::CONFIG_CHANGE_KIND_ADD_LEARNER);
    entry.set_change_node(4);
    entry.set_data(binaryBytes(5'000, 3));
    const std::string bytes = entry.SerializeAsString();
    std::string rest;
    std::string_view value;
    QVERIFY(protocol::splitBytesField(bytes, wire::Entry::kDataFieldNumber, rest, value));
    QVERIFY(value == entry.data());
    QVERIFY(value.data() >= bytes.data() && value.data() < bytes.data() + bytes.size());
    wire::Entry others;
    QVERIFY(others.ParseFromString(rest));
    QVERIFY(others.data().empty());
    others.set_data(std::string(value));
    QVERIFY(others.SerializeAsString() == bytes);

    // Absent field: an empty value, everything else in `rest`.
    entry.clear_data();
    QVERIFY(protocol::splitBytesField(entry.SerializeAsString(), wire::Entry::kDataFieldNumber,
                                      rest, value));
    QVERIFY(value.empty());
    QVERIFY(rest == entry.SerializeAsString());

    // Repeated occurrences: the last wins, as in protobuf.
    std::string twice;
    protocol::appendBytesField(twice, wire::Entry::kDataFieldNumber, "first");
    protocol::appendBytesField(twice, wire::Entry::kDataFieldNumber, "second");
    QVERIFY(protocol::splitBytesField(twice, wire::Entry::kDataFieldNumber, rest, value));
    QVERIFY(value == "second");
    QVERIFY(rest.empty());
  }

  // Random damage to valid messages: splitBytesField() plus parsing the rest
  // accepts exactly what protobuf accepts, and finds the same value.
  void bytesFieldAcceptsAndRejectsLikeProtobuf() {
    std::mt19937 random(20261126);
    int accepted = 0;
    int rejected = 0;
    for (int round = 0; round < 20'000; ++round) {
      wire::Entry entry;
      entry.set_term(random() % 1000);
      entry.set_index(random());
      entry.set_type(wire::ENTRY_TYPE_NORMAL);
      entry.set_data(binaryBytes(random() % 300, static_cast<unsigned>(round)));
      std::string bytes = entry.SerializeAsString();
      const int damage = static_cast<int>(random() % 5);
      if (damage == 0 && !bytes.empty()) {
        bytes[random() % bytes.size()] = static_cast<char>(random());
      } else if (damage == 1 && !bytes.empty()) {
        bytes.resize(random() % bytes.size());
      } else if (damage == 2) {
        std::string junk(1 + random() % 6, '\0');
        for (char& c : junk) c = static_cast<char>(random());
        bytes.insert(random() % (bytes.size() + 1), junk);
      } else if (damage == 3) {
        // A field 6 of another wire type, or an unknown field, at the end.
        const std::string_view tails[] = {std::string_view("\x30\x05", 2),
                                          std::string_view("\x35\x01\x02\x03\x04", 5),
                                          std::string_view("\x7a\x01x", 3),
                                          std::string_view("\x0b\x0c", 2),
                                          std::string_view("\x33\x08\x01\x34", 4),
                                          std::string_view("\x34", 1),
                                          std::string_view("\x00", 1)};
        bytes.append(tails[random() % std::size(tails)]);
      }
      wire::Entry expected;
      const bool protobufAccepts = expected.ParseFromString(bytes);
      std::string rest;
      std::string_view value;
      wire::Entry others;
      const bool splitAccepts =
          protocol::splitBytesField(bytes, wire::Entry::kDataFieldNumber, rest, value) &&
          others.ParseFromString(rest);
      QVERIFY2(protobufAccepts == splitAccepts,
               qPrintable(QStringLiteral("round %1, damage %2").arg(round).arg(damage)));
      if (!protobufAccepts) {
        ++rejected;
        continue;
      }
      ++accepted;
      QVERIFY(value == expected.data());
      others.set_data(std::string(value));
      QVERIFY(others.SerializeAsString() == expected.SerializeAsString());
    }
    // Both outcomes were exercised.
    QVERIFY(accepted > 1000);
    QVERIFY(rejected > 1000);
  }

  // ---- bad input, each a test ----

  void garbageBytes() {
    // Something that is not Copycat at all: the "length" is huge.
    FrameDecoder http;
    http.feed(std::string_view("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
    QVERIFY(!http.next().has_value());
    QCOMPARE(int(http.errorCode()), int(wire::ERROR_CODE_FRAME_TOO_LARGE));
    verifyStuckInError(http);

    // A plausible length followed by bytes that are not a protobuf message.
    FrameDecoder decoder;
    decoder.feed(rawFrame(std::string(16, '\xff')));
    QVERIFY(!decoder.next().has_value());
    QCOMPARE(int(decoder.errorCode()), int(wire::ERROR_CODE_MALFORMED_FRAME));
    verifyStuckInError(decoder);
  }

  void garbageInsideAKnownBody() {
    // Frame field 10 (raft), length-delimited, whose 3 bytes are a truncated
    // varint.
    FrameDecoder decoder;
    decoder.feed(rawFrame(std::string("\x52\x03\x08\xff\xff", 5)));
    QVERIFY(!decoder.next().has_value());
    QCOMPARE(int(decoder.errorCode()), int(wire::ERROR_CODE_MALFORMED_FRAME));
    verifyStuckInError(decoder);
  }

  void lengthOverMaximum() {
    // Detected from the prefix alone: the decoder does not wait for (or
    // buffer) the announced bytes.
    FrameDecoder decoder;
    decoder.feed(lengthPrefix(static_cast<std::uint32_t>(protocol::kMaxFrameBytes + 1)));
    QVERIFY(!decoder.next().has_value());
    QCOMPARE(int(decoder.errorCode()), int(wire::ERROR_CODE_FRAME_TOO_LARGE));
    QVERIFY(decoder.error().find("maximum") != std::string::npos);
    verifyStuckInError(decoder);

    FrameDecoder largest;
    largest.feed(lengthPrefix(0xffffffffu));
    QVERIFY(!largest.next().has_value());
    QCOMPARE(int(largest.errorCode()), int(wire::ERROR_CODE_FRAME_TOO_LARGE));
  }

  void zeroLength() {
    FrameDecoder decoder;
    decoder.feed(lengthPrefix(0));
    QVERIFY(!decoder.next().has_value());
    QCOMPARE(int(decoder.errorCode()), int(wire::ERROR_CODE_MALFORMED_FRAME));
    QVERIFY(decoder.error().find("zero") != std::string::npos);
    verifyStuckInError(decoder);
  }

  void truncatedFrame() {
    const std::string bytes = FrameEncoder().encode(sampleFrames()[1]);
    FrameDecoder decoder;
    decoder.feed(bytes.data(), bytes.size() - 1);
    QVERIFY(!decoder.next().has_value());
    QVERIFY(!decoder.hasError());
    QCOMPARE(decoder.pendingBytes(), bytes.size() - 1);

    // Half a length prefix is pending too.
    FrameDecoder prefixOnly;
    prefixOnly.feed(bytes.data(), 2);
    QVERIFY(!prefixOnly.next().has_value());
    QVERIFY(!prefixOnly.hasError());
    QCOMPARE(prefixOnly.pendingBytes(), std::size_t{2});

    // The missing byte completes it.
    decoder.feed(bytes.data() + bytes.size() - 1, 1);
    QVERIFY(decoder.next().has_value());
    QCOMPARE(decoder.pendingBytes(), std::size_t{0});
  }

  void frameWithoutBody() {
    // A Frame of only an unknown field (number 99, varint 1): what a newer
    // peer's new message type looks like to this side.
    FrameDecoder decoder;
    decoder.feed(rawFrame(std::string("\x98\x06\x01", 3)));
    QVERIFY(!decoder.next().has_value());
    QCOMPARE(int(decoder.errorCode()), int(wire::ERROR_CODE_UNKNOWN_MESSAGE));
    QVERIFY2(decoder.error().find("99") != std::string::npos, decoder.error().c_str());
    verifyStuckInError(decoder);
  }

  void bytesOfAnotherMessage() {
    // A RaftMessage sent without its Frame envelope.
    wire::RaftMessage raw;
    protocol::toWire(fullMessage(raft::MessageType::Heartbeat), raw);
    FrameDecoder decoder;
    decoder.feed(rawFrame(raw.SerializeAsString()));
    QVERIFY(!decoder.next().has_value());
    QVERIFY(decoder.errorCode() == wire::ERROR_CODE_UNKNOWN_MESSAGE ||
            decoder.errorCode() == wire::ERROR_CODE_MALFORMED_FRAME);
    verifyStuckInError(decoder);
  }

  void validFramesBeforeBadInputAreDelivered() {
    const auto frames = sampleFrames();
    FrameDecoder decoder;
    decoder.feed(encodeAll(frames) + lengthPrefix(0) + encodeAll(frames));
    std::size_t count = 0;
    while (auto frame = decoder.next()) {
      QVERIFY(sameFrame(*frame, frames[count]));
      ++count;
    }
    QCOMPARE(count, frames.size());
    QVERIFY(decoder.hasError());
    verifyStuckInError(decoder);
  }

  void outOfRangeMessageType() {
    for (int value : {42, -1, int(wire::RAFT_MESSAGE_TYPE_UNSPECIFIED)}) {
      wire::RaftMessage message;
      protocol::toWire(fullMessage(raft::MessageType::Vote), message);
      message.set_type(static_cast<wire::RaftMessageType>(value));
      std::string error;
      QVERIFY(!throughWire(message, &error).has_value());
      QVERIFY2(error.find("type") != std::string::npos, error.c_str());
      QVERIFY(!protocol::fromWire(message).has_value());  // no error string wanted
    }
  }

  void outOfRangeEntryEnums() {
    wire::RaftMessage base;
    protocol::toWire(fullMessage(raft::MessageType::Append), base);
    std::string error;

    wire::RaftMessage badType = base;
    badType.mutable_entries(1)->set_type(static_cast<wire::EntryType>(17));
    QVERIFY(!throughWire(badType, &error).has_value());
    QVERIFY2(error.find("invalid type") != std::string::npos, error.c_str());

    wire::RaftMessage unspecifiedType = base;
    unspecifiedType.mutable_entries(0)->set_type(wire::ENTRY_TYPE_UNSPECIFIED);
    QVERIFY(!throughWire(unspecifiedType, &error).has_value());

    wire::RaftMessage badKind = base;
    badKind.mutable_entries(4)->set_change_kind(static_cast<wire::ConfigChangeKind>(6));
    QVERIFY(!throughWire(badKind, &error).has_value());
    QVERIFY2(error.find("change kind") != std::string::npos, error.c_str());

    wire::RaftMessage noKind = base;
    QCOMPARE(int(noKind.entries(4).type()), int(wire::ENTRY_TYPE_CONFIG_CHANGE));
    noKind.mutable_entries(4)->set_change_kind(wire::CONFIG_CHANGE_KIND_UNSPECIFIED);
    QVERIFY(!throughWire(noKind, &error).has_value());
  }

  void inconsistentRaftMessages() {
    std::string error;
    wire::RaftMessage base;
    protocol::toWire(fullMessage(raft::MessageType::Append), base);
    QVERIFY2(throughWire(base, &error).has_value(), error.c_str());

    wire::RaftMessage noSender = base;
    noSender.set_from(0);
    QVERIFY(!throughWire(noSender, &error).has_value());

    wire::RaftMessage noRecipient = base;
    noRecipient.set_to(0);
    QVERIFY(!throughWire(noRecipient, &error).has_value());

    wire::RaftMessage entriesInVote = base;
    entriesInVote.set_type(wire::RAFT_MESSAGE_TYPE_VOTE);
    QVERIFY(!throughWire(entriesInVote, &error).has_value());
    QVERIFY2(error.find("only Append") != std::string::npos, error.c_str());

    wire::RaftMessage gap = base;
    gap.mutable_entries(2)->set_index(gap.entries(2).index() + 1);
    QVERIFY(!throughWire(gap, &error).has_value());

    wire::RaftMessage overflow = base;
    overflow.set_index(std::numeric_limits<std::uint64_t>::max() - 1);
    QVERIFY(!throughWire(overflow, &error).has_value());

    wire::RaftMessage futureTerm = base;
    futureTerm.mutable_entries(0)->set_term(base.term() + 1);
    QVERIFY(!throughWire(futureTerm, &error).has_value());

    wire::RaftMessage termsBackwards = base;
    termsBackwards.mutable_entries(base.entries_size() - 1)->set_term(1);
    QVERIFY(!throughWire(termsBackwards, &error).has_value());

    wire::RaftMessage unsorted = base;
    unsorted.mutable_snapshot()->mutable_voters()->SwapElements(0, 1);
    QVERIFY(!throughWire(unsorted, &error).has_value());
    QVERIFY2(error.find("voters") != std::string::npos, error.c_str());

    wire::RaftMessage zeroLearner = base;
    zeroLearner.mutable_snapshot()->set_learners(0, 0);
    QVERIFY(!throughWire(zeroLearner, &error).has_value());

    wire::RaftMessage overlap = base;
    overlap.mutable_snapshot()->set_learners(0, base.snapshot().voters(1));
    QVERIFY(!throughWire(overlap, &error).has_value());
    QVERIFY2(error.find("both voter and learner") != std::string::npos, error.c_str());
  }

  void errorFrameHelper() {
    const wire::Frame frame =
        protocol::makeErrorFrame(wire::ERROR_CODE_WRONG_CLUSTER, "cluster \"a\" != \"b\"", 5);
    const std::string bytes = FrameEncoder().encode(frame);
    FrameDecoder decoder;
    decoder.feed(bytes);
    const auto back = decoder.next();
    QVERIFY(back.has_value());
    QCOMPARE(protocol::bodyName(*back), std::string_view("error"));
    QCOMPARE(int(back->error().code()), int(wire::ERROR_CODE_WRONG_CLUSTER));
    QCOMPARE(back->error().request_id(), std::uint64_t{5});
    QCOMPARE(protocol::bodyName(wire::Frame{}), std::string_view("none"));
  }
};

QTEST_APPLESS_MAIN(ProtocolCodecTest)
#include "protocol_codec_test.moc"
