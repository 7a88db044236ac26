// Serializer: stable ids, round trips of operations and results, custom
// codecs, and bad input (unknown ids, truncated or garbage bytes) turned into
// error values, never crashes.

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include <QTest>

#include "engine/api/serializer.h"
#include "engine/kv/map_state_machine.h"

using copycat::Codec;
using copycat::Command;
using copycat::Consistency;
using copycat::DecodeError;
using copycat::EncodedOperation;
using copycat::ErrorCode;
using copycat::OperationKind;
using copycat::Query;
using copycat::Serializer;
using copycat::UnregisteredTypeError;
using namespace copycat::kv;

// QTest cannot print enums whose toString() returns string_view: compare names.
#define QCOMPARE_ENUM(actual, expected) QCOMPARE(enumName(actual), enumName(expected))

template <class E>
QString enumName(E value) {
  const std::string_view name = copycat::toString(value);
  return QString::fromUtf8(name.data(), static_cast<qsizetype>(name.size()));
}

namespace {

enum class Color : std::uint8_t { Red, Green, Blue };

// An operation exercising several cereal types at once.
struct RichCommand : Command<std::map<std::string, std::int64_t>> {
  std::int32_t number = 0;
  double ratio = 0;
  Color color = Color::Red;
  std::vector<std::string> names;
  std::optional<std::uint64_t> maybe;
  std::map<std::string, std::vector<std::int64_t>> nested;

  template <class Archive>
  void serialize(Archive& archive) {
    archive(number, ratio, color, names, maybe, nested);
  }
  friend bool operator==(const RichCommand&, const RichCommand&) = default;
};

struct LeaseQuery : Query<std::string, Consistency::LinearizableLease> {
  template <class Archive>
  void serialize(Archive&) {}
};

using Flags = std::array<bool, 2>;

struct FlagsCommand : Command<Flags> {
  template <class Archive>
  void serialize(Archive&) {}
};

struct NeverRegistered : Command<bool> {
  template <class Archive>
  void serialize(Archive&) {}
};

// No serialize(): only usable with a custom codec.
struct TextCommand : Command<std::int64_t> {
  std::string text;
};

Codec<TextCommand> textCodec() {
  return {[](const TextCommand& c) { return "T:" + c.text; },
          [](std::string_view bytes) {
            if (bytes.substr(0, 2) != "T:") throw DecodeError("missing T: prefix");
            TextCommand c;
            c.text = std::string(bytes.substr(2));
            return c;
          }};
}

Codec<std::int64_t> decimalCodec() {
  return {[](const std::int64_t& v) { return std::to_string(v); },
          [](std::string_view bytes) { return std::stoll(std::string(bytes)); }};
}

Serializer kvSerializer() {
  Serializer s;
  registerKvOperations(s);
  return s;
}

QString hex(const std::string& bytes) {
  return QString::fromLatin1(QByteArray::fromStdString(bytes).toHex());
}

// What cereal's own portable binary archive writes for `value`.
template <class T>
std::string cerealBytes(const T& value) {
  std::ostringstream out(std::ios::binary);
  {
    cereal::PortableBinaryOutputArchive archive(
        out, cereal::PortableBinaryOutputArchive::Options::LittleEndian());
    archive(value);
  }
  return std::move(out).str();
}

}  // namespace

class ApiSerializerTest : public QObject {
  Q_OBJECT

 private slots:
  void kvOperationsHaveFixedIds() {
    const Serializer s = kvSerializer();
    QCOMPARE(s.typeIdOf<PutCommand>(), std::optional<std::uint32_t>(1));
    QCOMPARE(s.typeIdOf<GetQuery>(), std::optional<std::uint32_t>(2));
    QCOMPARE(s.typeIdOf<RemoveCommand>(), std::optional<std::uint32_t>(3));
    QCOMPARE(s.typeIdOf<CasCommand>(), std::optional<std::uint32_t>(4));
    QCOMPARE(s.typeIdOf<SizeQuery>(), std::optional<std::uint32_t>(5));
    QCOMPARE(s.typeIdOf<KeysQuery>(), std::optional<std::uint32_t>(6));
    QCOMPARE(s.registeredTypes().size(), std::size_t(6));
    QCOMPARE(s.info(1)->name, std::string("copycat::kv::PutCommand"));
    QCOMPARE_ENUM(s.info(1)->kind, OperationKind::Command);
    QCOMPARE_ENUM(s.info(2)->kind, OperationKind::Query);
    QCOMPARE_ENUM(s.info(2)->defaultConsistency, Consistency::Linearizable);
    QVERIFY(!s.contains(7));
  }

  // encodeObject writes into a string with its own archive: byte for byte
  // what cereal's stream archive writes, for every kind of value cereal
  // serializes (arithmetic, enums, containers of arithmetic written as one
  // block, strings with zero bytes, optionals, nested maps, bools).
  void encodingMatchesCerealsPortableBinaryArchive() {
    RichCommand rich;
    rich.number = -123456;
    rich.ratio = 2.5e-7;
    rich.color = Color::Blue;
    rich.names = {"", std::string("a\0b", 3), std::string(300, 'x')};
    rich.maybe = 0xfedcba9876543210ULL;
    rich.nested = {{"one", {1, -2, 3}}, {"two", {}}};
    QCOMPARE(hex(copycat::encodeObject(rich)), hex(cerealBytes(rich)));
    QCOMPARE(copycat::decodeObject<RichCommand>(copycat::encodeObject(rich)), rich);

    const std::vector<std::int32_t> block{1, -1, 0x7fffffff, -0x7fffffff};
    QCOMPARE(hex(copycat::encodeObject(block)), hex(cerealBytes(block)));
    const std::vector<bool> bits{true, false, true, true};
    QCOMPARE(hex(copycat::encodeObject(bits)), hex(cerealBytes(bits)));
    const Flags flags{true, false};
    QCOMPARE(hex(copycat::encodeObject(flags)), hex(cerealBytes(flags)));
    const std::optional<std::string> none;
    QCOMPARE(hex(copycat::encodeObject(none)), hex(cerealBytes(none)));
    const PutCommand put("key", std::string(256, 'v'));
    QCOMPARE(hex(copycat::encodeObject(put)), hex(cerealBytes(put)));
  }

  // The encoding is cereal's portable binary format: a little-endian flag
  // byte, then u64 little-endian lengths before strings. Pinned so that logs
  // written today stay readable.
  void encodingIsStable() {
    const Serializer s = kvSerializer();
    const EncodedOperation put = s.encode(PutCommand("k", "vv"));
    QCOMPARE(put.typeId, 1u);
    QCOMPARE(hex(put.bytes), QString("01"
                                     "0100000000000000"
                                     "6b"
                                     "0200000000000000"
                                     "7676"));
    // cereal writes an optional's "is empty" flag first.
    QCOMPARE(hex(s.encodeResult<PutCommand>(std::nullopt)), QString("0101"));
    QCOMPARE(hex(s.encodeResult<PutCommand>(std::string("v"))), QString("01"
                                                                        "00"
                                                                        "0100000000000000"
                                                                        "76"));
    QCOMPARE(hex(s.encodeResult<CasCommand>(true)), QString("0101"));
  }

  void operationsRoundTrip() {
    const Serializer s = kvSerializer();
    const auto cas = s.encode(CasCommand("key", std::nullopt, "new"));
    const auto decoded = s.decodeAs<CasCommand>(cas.typeId, cas.bytes);
    QVERIFY(decoded.ok());
    QCOMPARE(decoded->key, std::string("key"));
    QCOMPARE(decoded->expected, std::optional<std::string>());
    QCOMPARE(decoded->value, std::string("new"));

    const auto any = s.decode(cas.typeId, cas.bytes);
    QVERIFY(any.ok());
    QCOMPARE(any->typeId(), 4u);
    QCOMPARE_ENUM(any->kind(), OperationKind::Command);
    QVERIFY(any->get<CasCommand>() != nullptr);
    QVERIFY(any->get<PutCommand>() == nullptr);

    const auto keys = s.encode(KeysQuery{});
    QVERIFY(s.decodeAs<KeysQuery>(keys.typeId, keys.bytes).ok());
  }

  void richTypesRoundTrip() {
    Serializer s;
    s.registerType<RichCommand>(100);
    RichCommand c;
    c.number = -7;
    c.ratio = 0.25;
    c.color = Color::Blue;
    c.names = {"a", "", std::string(1000, 'x')};
    c.maybe = 42;
    c.nested = {{"one", {1}}, {"many", {1, -2, 3}}};
    const auto encoded = s.encode(c);
    const auto decoded = s.decodeAs<RichCommand>(100, encoded.bytes);
    QVERIFY(decoded.ok());
    QVERIFY(*decoded == c);

    const std::map<std::string, std::int64_t> result{{"x", 1}, {"y", -1}};
    const auto bytes = s.encodeResult<RichCommand>(result);
    const auto back = s.decodeResult<RichCommand>(bytes);
    QVERIFY(back.ok());
    QCOMPARE(*back, result);
  }

  void resultsRoundTrip() {
    const Serializer s = kvSerializer();
    const auto some = s.decodeResult<GetQuery>(s.encodeResult<GetQuery>(std::string("v")));
    QVERIFY(some.ok());
    QCOMPARE(*some, std::optional<std::string>("v"));
    const std::vector<std::string> keys{"a", "b"};
    QCOMPARE(*s.decodeResult<KeysQuery>(s.encodeResult<KeysQuery>(keys)), keys);
    QCOMPARE(*s.decodeResult<SizeQuery>(s.encodeResult<SizeQuery>(12)), std::uint64_t(12));
  }

  void queryConsistencyIsRecorded() {
    Serializer s;
    s.registerType<LeaseQuery>(9);
    QCOMPARE_ENUM(s.info(9)->kind, OperationKind::Query);
    QCOMPARE_ENUM(s.info(9)->defaultConsistency, Consistency::LinearizableLease);
  }

  void encodingAnUnregisteredTypeThrowsWithItsName() {
    const Serializer s = kvSerializer();
    try {
      s.encode(NeverRegistered{});
      QFAIL("no exception");
    } catch (const UnregisteredTypeError& e) {
      QVERIFY2(std::string(e.what()).find("NeverRegistered") != std::string::npos, e.what());
    }
    QVERIFY_THROWS_EXCEPTION(UnregisteredTypeError, s.encodeResult<NeverRegistered>(true));
    const auto result = s.decodeResult<NeverRegistered>("\x01\x01");
    QVERIFY(!result.ok());
    QCOMPARE_ENUM(result.error().code, ErrorCode::UnknownOperation);
    QVERIFY(!s.typeIdOf<NeverRegistered>().has_value());
  }

  void conflictingRegistrationsAreRefused() {
    Serializer s = kvSerializer();
    registerKvOperations(s);  // the same registrations again: fine
    QCOMPARE(s.registeredTypes().size(), std::size_t(6));
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, s.registerType<NeverRegistered>(1));
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, s.registerType<PutCommand>(77));
    QVERIFY_THROWS_EXCEPTION(std::invalid_argument, s.registerType<NeverRegistered>(0));
    QVERIFY(!s.contains(77));
    QCOMPARE(s.info(1)->name, std::string("copycat::kv::PutCommand"));
  }

  void unknownIdIsAnError() {
    const Serializer s = kvSerializer();
    const auto result = s.decode(4242, "\x01");
    QVERIFY(!result.ok());
    QCOMPARE_ENUM(result.error().code, ErrorCode::UnknownOperation);
    QVERIFY(result.error().message.find("4242") != std::string::npos);
    const auto wrongType = s.decodeAs<GetQuery>(1, s.encode(PutCommand("k", "v")).bytes);
    QVERIFY(!wrongType.ok());
    QCOMPARE_ENUM(wrongType.error().code, ErrorCode::UnknownOperation);
  }

  void everyTruncationIsAnError() {
    const Serializer s = kvSerializer();
    const auto cas = s.encode(CasCommand("key", std::string("old"), "new"));
    for (std::size_t n = 0; n < cas.bytes.size(); ++n) {
      const auto result = s.decode(cas.typeId, std::string_view(cas.bytes).substr(0, n));
      QVERIFY2(!result.ok(), qPrintable(QString("prefix of %1 bytes decoded").arg(n)));
      QCOMPARE_ENUM(result.error().code, ErrorCode::MalformedOperation);
      QVERIFY(result.error().message.find("CasCommand") != std::string::npos);
    }
    const auto result = s.encodeResult<GetQuery>(std::string("value"));
    for (std::size_t n = 0; n < result.size(); ++n) {
      const auto decoded = s.decodeResult<GetQuery>(std::string_view(result).substr(0, n));
      QVERIFY(!decoded.ok());
      QCOMPARE_ENUM(decoded.error().code, ErrorCode::MalformedResult);
    }
  }

  void trailingBytesAreAnError() {
    const Serializer s = kvSerializer();
    auto put = s.encode(PutCommand("k", "v"));
    put.bytes += "junk";
    const auto result = s.decode(put.typeId, put.bytes);
    QVERIFY(!result.ok());
    QVERIFY(result.error().message.find("trailing") != std::string::npos);
  }

  // A length prefix claiming 2^40 bytes must fail before allocating them.
  void hugeLengthIsRefusedWithoutAllocating() {
    const Serializer s = kvSerializer();
    std::string bytes = "\x01";
    bytes += std::string("\x00\x00\x00\x00\x00\x01\x00\x00", 8);
    bytes += "abc";
    const auto result = s.decode(1, bytes);
    QVERIFY(!result.ok());
    QCOMPARE_ENUM(result.error().code, ErrorCode::MalformedOperation);
    QVERIFY2(result.error().message.find("exceeds") != std::string::npos,
             result.error().message.c_str());

    std::string keys = "\x01";  // a vector<string> of 2^62 elements
    keys += std::string("\x00\x00\x00\x00\x00\x00\x00\x40", 8);
    QCOMPARE_ENUM(s.decodeResult<KeysQuery>(keys).error().code, ErrorCode::MalformedResult);
  }

  // A bool byte other than 0 or 1 is refused (loading it would be undefined).
  void badBoolIsAnError() {
    const Serializer s = kvSerializer();
    QCOMPARE_ENUM(s.decodeResult<CasCommand>(std::string("\x01\x02", 2)).error().code,
                  ErrorCode::MalformedResult);
    QCOMPARE(*s.decodeResult<CasCommand>(std::string("\x01\x00", 2)), false);
    Serializer t;
    t.registerType<FlagsCommand>(1);
    const Flags flags{true, false};
    QCOMPARE(*t.decodeResult<FlagsCommand>(t.encodeResult<FlagsCommand>(flags)), flags);
    QVERIFY(!t.decodeResult<FlagsCommand>(std::string("\x01\x01\x07", 3)).ok());
  }

  void garbageNeverCrashes() {
    const Serializer s = kvSerializer();
    std::mt19937_64 rng(20240601);
    int rejected = 0;
    for (int round = 0; round < 20000; ++round) {
      std::string bytes(rng() % 40, '\0');
      for (char& c : bytes) c = static_cast<char>(rng() % 4 == 0 ? rng() : rng() % 3);
      const auto id = static_cast<std::uint32_t>(rng() % 8);
      const auto result = s.decode(id, bytes);
      if (!result.ok()) ++rejected;
      (void)s.decodeResult<KeysQuery>(bytes);
      (void)s.decodeResult<CasCommand>(bytes);
    }
    QVERIFY(rejected > 19000);
  }

  void customCodec() {
    Serializer s;
    s.registerType<TextCommand>(50, textCodec(), decimalCodec());
    TextCommand c;
    c.text = "hello";
    const auto encoded = s.encode(c);
    QCOMPARE(encoded.bytes, std::string("T:hello"));
    QCOMPARE(s.decodeAs<TextCommand>(50, encoded.bytes)->text, std::string("hello"));
    QCOMPARE(s.encodeResult<TextCommand>(-12), std::string("-12"));
    QCOMPARE(*s.decodeResult<TextCommand>("34"), std::int64_t(34));

    const auto bad = s.decode(50, "X:hello");
    QVERIFY(!bad.ok());
    QCOMPARE_ENUM(bad.error().code, ErrorCode::MalformedOperation);
    QVERIFY(bad.error().message.find("missing T: prefix") != std::string::npos);
    QCOMPARE_ENUM(s.decodeResult<TextCommand>("nan").error().code, ErrorCode::MalformedResult);

    // Custom operation codec, default (cereal) result codec.
    Serializer t;
    t.registerType<TextCommand>(51, textCodec());
    QCOMPARE(*t.decodeResult<TextCommand>(t.encodeResult<TextCommand>(5)), std::int64_t(5));

    QVERIFY_THROWS_EXCEPTION(std::invalid_argument,
                             t.registerType<LeaseQuery>(52, Codec<LeaseQuery>{}));
  }
};

QTEST_APPLESS_MAIN(ApiSerializerTest)
#include "api_serializer_test.moc"
