// A Parquet reader for datasets: just enough of the format to turn a file's rows into JSON,
// written from the format's specification (parquet-format's parquet.thrift and Encodings.md) and
// Snappy's format description. Everything a file says is checked before it is used: offsets,
// lengths, counts and levels come from an untrusted file.
#include "load/parquet.hpp"

#include <fmt/format.h>
#include <fmt/ranges.h>
#include <zlib.h>
#include <zstd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "aifc/error.hpp"

namespace aifc::detail {
namespace {

// The numbers the format gives its enums (parquet.thrift).
enum PhysicalType { kBoolean = 0, kInt32, kInt64, kInt96, kFloat, kDouble, kByteArray, kFixed };
enum Repetition { kRequired = 0, kOptional = 1, kRepeated = 2 };
enum Codec { kUncompressed = 0, kSnappy = 1, kGzip = 2, kZstd = 6 };
enum Encoding { kPlain = 0, kPlainDictionary = 2, kRle = 3, kRleDictionary = 8 };
enum PageType { kDataPage = 0, kDictionaryPage = 2, kDataPageV2 = 3 };
constexpr int kConvertedMap = 1, kConvertedMapKeyValue = 2, kConvertedList = 3;
constexpr int kLogicalMap = 2, kLogicalList = 3;

const char* codec_name(std::int64_t codec) {
  static constexpr const char* names[] = {"UNCOMPRESSED", "SNAPPY", "GZIP", "LZO",
                                          "BROTLI",       "LZ4",    "ZSTD", "LZ4_RAW"};
  return codec >= 0 && codec < 8 ? names[codec] : "unknown";
}

const char* encoding_name(std::int64_t encoding) {
  static constexpr const char* names[] = {
      "PLAIN",          "GROUP_VAR_INT",       "PLAIN_DICTIONARY",        "RLE",
      "BIT_PACKED",     "DELTA_BINARY_PACKED", "DELTA_LENGTH_BYTE_ARRAY", "DELTA_BYTE_ARRAY",
      "RLE_DICTIONARY", "BYTE_STREAM_SPLIT"};
  return encoding >= 0 && encoding < 10 ? names[encoding] : "unknown";
}

// What the reader cannot read; for_each_parquet_row names the file and makes it an aifc::Error.
struct Damaged : std::runtime_error {
  using std::runtime_error::runtime_error;
};
[[noreturn]] void damaged(const std::string& what) { throw Damaged(what); }

// Bytes to read, front to back, never beyond the end.
class Bytes {
 public:
  Bytes(const std::uint8_t* data, std::size_t size) : at_(data), end_(data + size) {}
  std::size_t left() const noexcept { return static_cast<std::size_t>(end_ - at_); }
  const std::uint8_t* position() const noexcept { return at_; }
  std::uint8_t byte() {
    need(1);
    return *at_++;
  }
  const std::uint8_t* take(std::size_t n) {
    need(n);
    const auto* p = at_;
    at_ += n;
    return p;
  }
  std::uint64_t little_endian(std::size_t n) {
    const auto* p = take(n);
    std::uint64_t v = 0;
    for (std::size_t i = 0; i < n; ++i) v |= std::uint64_t{p[i]} << (8 * i);
    return v;
  }
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      const auto b = byte();
      v |= std::uint64_t{b & 0x7Fu} << shift;
      if (!(b & 0x80)) return v;
    }
    damaged("a variable-length integer runs past 64 bits");
  }

 private:
  void need(std::size_t n) const {
    if (left() < n) damaged("the data ends early");
  }
  const std::uint8_t* at_;
  const std::uint8_t* end_;
};

// Thrift's compact protocol, the encoding of Parquet's metadata: structs are read field by field
// and fields this reader does not use are skipped by type.
class Thrift {
 public:
  enum Type {
    kStop = 0,
    kTrue = 1,
    kFalse = 2,
    kByte,
    kI16,
    kI32,
    kI64,
    kDouble,
    kBinary,
    kList,
    kSet,
    kMap,
    kStruct
  };
  explicit Thrift(Bytes& in) : in_(in) {}

  std::int64_t integer() {
    const auto v = in_.varint();
    return static_cast<std::int64_t>(v >> 1) ^ -static_cast<std::int64_t>(v & 1);
  }
  std::string binary() {
    const auto n = in_.varint();
    if (n > in_.left()) damaged("a text field runs past the end of the metadata");
    const auto* p = in_.take(static_cast<std::size_t>(n));
    return std::string(reinterpret_cast<const char*>(p), static_cast<std::size_t>(n));
  }
  // Calls on_field(id, type) for each field; on_field reads the value or returns false to have
  // it skipped.
  template <class OnField>
  void read_struct(OnField&& on_field) {
    Depth guard(depth_);
    std::int64_t last_id = 0;
    for (;;) {
      const auto header = in_.byte();
      const int type = header & 0x0F;
      if (type == kStop) return;
      const int delta = header >> 4;
      const std::int64_t id = delta ? last_id + delta : integer();
      last_id = id;
      if (!on_field(id, type)) skip(type);
    }
  }
  // Calls on_element(type) for each element of a list.
  template <class OnElement>
  void read_list(OnElement&& on_element) {
    Depth guard(depth_);
    const auto header = in_.byte();
    std::uint64_t size = header >> 4;
    const int type = header & 0x0F;
    if (size == 15) size = in_.varint();
    // Every element takes at least one byte: a count beyond the bytes left is a lie.
    if (size > in_.left()) damaged("a list claims more elements than the metadata holds");
    for (std::uint64_t i = 0; i < size; ++i) on_element(type);
  }
  // In lists and maps a boolean is a byte, whichever of the two boolean types is named.
  static int element(int type) noexcept { return type == kTrue || type == kFalse ? kByte : type; }
  bool boolean(int type) {
    if (type == kTrue) return true;
    if (type == kFalse) return false;
    return in_.byte() == 1;  // an element of a list
  }
  void skip(int type) {
    Depth guard(depth_);
    switch (type) {
      case kTrue:
      case kFalse:
        return;
      case kByte:
        in_.byte();
        return;
      case kI16:
      case kI32:
      case kI64:
        in_.varint();
        return;
      case kDouble:
        in_.take(8);
        return;
      case kBinary:
        binary();
        return;
      case kList:
      case kSet:
        read_list([&](int type_of_element) { skip(element(type_of_element)); });
        return;
      case kMap: {
        const auto size = in_.varint();
        if (size == 0) return;
        if (size > in_.left()) damaged("a map claims more entries than the metadata holds");
        const auto types = in_.byte();
        for (std::uint64_t i = 0; i < size; ++i) {
          skip(element(types >> 4));
          skip(element(types & 0x0F));
        }
        return;
      }
      case kStruct:
        read_struct([](std::int64_t, int) { return false; });
        return;
      default:
        damaged(fmt::format("unknown Thrift field type {}", type));
    }
  }

 private:
  // Nesting is bounded, so a hostile file cannot overflow the stack.
  struct Depth {
    explicit Depth(int& d) : depth(d) {
      if (++depth > 64) damaged("the metadata nests too deep");
    }
    ~Depth() { --depth; }
    int& depth;
  };
  Bytes& in_;
  int depth_ = 0;
};

// Snappy (the default codec of pyarrow, pandas, DuckDB and Spark): a length, then literals and
// copies of earlier output.
std::string snappy_uncompress(const std::uint8_t* data, std::size_t size, std::size_t expected) {
  Bytes in(data, size);
  const auto length = in.varint();
  if (length != expected)
    damaged(fmt::format("a Snappy block holds {} bytes where the page says {}", length, expected));
  std::string out;
  out.reserve(expected);
  while (in.left() > 0) {
    const auto tag = in.byte();
    std::size_t len = 0, offset = 0;
    switch (tag & 3) {
      case 0: {  // literal
        len = (tag >> 2) + 1u;
        if (len > 60) len = static_cast<std::size_t>(in.little_endian(len - 60)) + 1;
        if (len > expected - out.size()) damaged("a Snappy literal runs past the block's length");
        out.append(reinterpret_cast<const char*>(in.take(len)), len);
        continue;
      }
      case 1:
        len = ((tag >> 2) & 7u) + 4;
        offset = (static_cast<std::size_t>(tag >> 5) << 8) | in.byte();
        break;
      case 2:
        len = (tag >> 2) + 1u;
        offset = static_cast<std::size_t>(in.little_endian(2));
        break;
      default:
        len = (tag >> 2) + 1u;
        offset = static_cast<std::size_t>(in.little_endian(4));
        break;
    }
    if (offset == 0 || offset > out.size()) damaged("a Snappy copy reaches before the block");
    if (len > expected - out.size()) damaged("a Snappy copy runs past the block's length");
    // Byte by byte: a copy may overlap what it writes (a run).
    for (std::size_t i = 0; i < len; ++i) out.push_back(out[out.size() - offset]);
  }
  if (out.size() != expected) damaged("a Snappy block ends short of its length");
  return out;
}

// Text as JSON can hold it: valid UTF-8 is kept, any other byte becomes U+FFFD.
std::string as_utf8(const std::uint8_t* p, std::size_t n) {
  std::string out;
  out.reserve(n);
  std::size_t i = 0;
  while (i < n) {
    const auto b = p[i];
    std::size_t len = b < 0x80         ? 1
                      : (b >> 5) == 6  ? 2
                      : (b >> 4) == 14 ? 3
                      : (b >> 3) == 30 ? 4
                                       : 0;
    bool ok = len > 0 && i + len <= n;
    for (std::size_t k = 1; ok && k < len; ++k) ok = (p[i + k] & 0xC0) == 0x80;
    if (ok && len > 1) {  // no overlong forms, surrogates or code points beyond U+10FFFF
      std::uint32_t cp = b & (0xFF >> (len + 1));
      for (std::size_t k = 1; k < len; ++k) cp = (cp << 6) | (p[i + k] & 0x3F);
      static constexpr std::uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
      ok = cp >= smallest[len] && cp <= 0x10FFFF && (cp < 0xD800 || cp > 0xDFFF);
    }
    if (ok) {
      out.append(reinterpret_cast<const char*>(p + i), len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      ++i;
    }
  }
  return out;
}

// One node of the schema tree.
struct Node {
  std::string name;
  int repetition = kRequired;
  int physical = -1;  // leaves only
  std::int64_t type_length = 0;
  bool list = false, map = false;
  std::vector<std::unique_ptr<Node>> children;
  bool leaf() const noexcept { return children.empty() && physical >= 0; }
};

struct Leaf {
  const Node* node = nullptr;
  std::vector<const Node*> path;  // below the root, down to the leaf
  std::vector<int> def_at;        // definition level once path[i] is present
  std::vector<int> rep_at;        // repetition level of path[i] (repeated nodes)
  int max_def = 0, max_rep = 0;
};

struct ColumnChunk {
  std::vector<std::string> path;
  std::int64_t physical = -1, codec = 0, num_values = 0;
  std::int64_t data_offset = -1, dictionary_offset = -1, compressed_size = 0;
  bool external = false;
};

struct RowGroup {
  std::int64_t num_rows = 0;
  std::vector<ColumnChunk> columns;
};

struct SchemaElement {
  std::string name;
  std::int64_t physical = -1, type_length = 0, repetition = kRequired, children = 0;
  bool list = false, map = false;
};

struct FileMetaData {
  std::vector<SchemaElement> schema;
  std::vector<RowGroup> row_groups;
};

FileMetaData read_footer(Bytes in) {
  Thrift t(in);
  FileMetaData meta;
  auto read_column = [&](ColumnChunk& c) {
    t.read_struct([&](std::int64_t id, int) {
      if (id == 1) {
        t.binary();
        c.external = true;
      } else if (id == 3) {
        t.read_struct([&](std::int64_t f, int) {
          switch (f) {
            case 1:
              c.physical = t.integer();
              return true;
            case 3:
              t.read_list([&](int) { c.path.push_back(t.binary()); });
              return true;
            case 4:
              c.codec = t.integer();
              return true;
            case 5:
              c.num_values = t.integer();
              return true;
            case 7:
              c.compressed_size = t.integer();
              return true;
            case 9:
              c.data_offset = t.integer();
              return true;
            case 11:
              c.dictionary_offset = t.integer();
              return true;
            default:
              return false;
          }
        });
      } else {
        return false;
      }
      return true;
    });
  };
  t.read_struct([&](std::int64_t id, int) {
    if (id == 2) {
      t.read_list([&](int) {
        SchemaElement e;
        t.read_struct([&](std::int64_t f, int) {
          switch (f) {
            case 1:
              e.physical = t.integer();
              return true;
            case 2:
              e.type_length = t.integer();
              return true;
            case 3:
              e.repetition = t.integer();
              return true;
            case 4:
              e.name = t.binary();
              return true;
            case 5:
              e.children = t.integer();
              return true;
            case 6: {
              const auto converted = t.integer();
              e.list = e.list || converted == kConvertedList;
              e.map = e.map || converted == kConvertedMap || converted == kConvertedMapKeyValue;
              return true;
            }
            case 10:
              t.read_struct([&](std::int64_t kind, int type) {
                e.list = e.list || kind == kLogicalList;
                e.map = e.map || kind == kLogicalMap;
                t.skip(type);
                return true;
              });
              return true;
            default:
              return false;
          }
        });
        meta.schema.push_back(std::move(e));
      });
    } else if (id == 4) {
      t.read_list([&](int) {
        RowGroup g;
        t.read_struct([&](std::int64_t f, int) {
          if (f == 1) {
            t.read_list([&](int) {
              g.columns.emplace_back();
              read_column(g.columns.back());
            });
          } else if (f == 3) {
            g.num_rows = t.integer();
          } else {
            return false;
          }
          return true;
        });
        meta.row_groups.push_back(std::move(g));
      });
    } else {
      return false;
    }
    return true;
  });
  return meta;
}

// Builds the schema tree from its depth-first list; the leaves are returned in column order.
std::unique_ptr<Node> build_schema(const std::vector<SchemaElement>& elements,
                                   std::vector<Leaf>& leaves) {
  if (elements.empty()) damaged("the file has no schema");
  std::size_t next = 0;
  // Recursion bounded: every element is consumed once, and depth is capped.
  std::function<std::unique_ptr<Node>(int)> build = [&](int depth) {
    if (depth > 64) damaged("the schema nests too deep");
    if (next >= elements.size()) damaged("the schema lists fewer elements than it claims");
    const auto& e = elements[next++];
    auto node = std::make_unique<Node>();
    node->name = e.name;
    node->repetition = static_cast<int>(e.repetition);
    node->list = e.list;
    node->map = e.map;
    node->type_length = e.type_length;
    if (node->repetition < kRequired || node->repetition > kRepeated)
      damaged(fmt::format("column '{}' has an unknown repetition {}", e.name, e.repetition));
    if (e.children < 0 || static_cast<std::size_t>(e.children) > elements.size())
      damaged(fmt::format("'{}' claims {} children", e.name, e.children));
    if (e.children == 0 && depth > 0) {
      if (e.physical < kBoolean || e.physical > kFixed)
        damaged(fmt::format("column '{}' has an unknown type {}", e.name, e.physical));
      node->physical = static_cast<int>(e.physical);
    }
    for (std::int64_t i = 0; i < e.children; ++i) node->children.push_back(build(depth + 1));
    return node;
  };
  auto root = build(0);
  std::vector<const Node*> path;
  std::function<void(const Node&)> collect = [&](const Node& n) {
    for (const auto& child : n.children) {
      path.push_back(child.get());
      if (child->leaf()) {
        Leaf leaf;
        leaf.node = child.get();
        leaf.path = path;
        for (const Node* p : path) {
          if (p->repetition != kRequired) ++leaf.max_def;
          if (p->repetition == kRepeated) ++leaf.max_rep;
          leaf.def_at.push_back(leaf.max_def);
          leaf.rep_at.push_back(leaf.max_rep);
        }
        leaves.push_back(std::move(leaf));
      } else if (!child->children.empty()) {
        collect(*child);
      }
      path.pop_back();
    }
  };
  collect(*root);
  return root;
}

int bit_width(int max_level) {
  int w = 0;
  while ((1 << w) <= max_level) ++w;
  return w;
}

// The RLE / bit-packed hybrid of levels and dictionary indices: appends `count` values.
template <class T>
void read_hybrid(Bytes in, int width, std::size_t count, std::vector<T>& out) {
  if (width < 0 || width > 32) damaged(fmt::format("a bit width of {}", width));
  const std::size_t start = out.size();
  while (out.size() - start < count) {
    const auto header = in.varint();
    const std::size_t wanted = count - (out.size() - start);
    if (header & 1) {  // groups of 8 bit-packed values
      const std::uint64_t groups = header >> 1;
      if (groups > in.left() + 1) damaged("a bit-packed run is longer than its page");
      const std::size_t bytes = static_cast<std::size_t>(groups) * static_cast<std::size_t>(width);
      const auto* p = in.take(bytes);
      const std::size_t n = std::min<std::size_t>(static_cast<std::size_t>(groups) * 8, wanted);
      for (std::size_t i = 0; i < n; ++i) {
        std::uint64_t v = 0;
        for (int b = 0; b < width; ++b) {
          const std::size_t bit = i * static_cast<std::size_t>(width) + static_cast<std::size_t>(b);
          v |= std::uint64_t{(p[bit / 8] >> (bit % 8)) & 1u} << b;
        }
        out.push_back(static_cast<T>(v));
      }
      if (groups == 0 && in.left() == 0) break;
    } else {  // one value repeated
      const std::uint64_t run = header >> 1;
      const auto v = in.little_endian(static_cast<std::size_t>((width + 7) / 8));
      if (run == 0) damaged("an empty run");
      out.insert(out.end(), static_cast<std::size_t>(std::min<std::uint64_t>(run, wanted)),
                 static_cast<T>(v));
    }
  }
  if (out.size() - start < count) damaged("levels end before the page's values");
}

// A column chunk decoded: one entry per value, null or not.
struct Column {
  std::vector<std::uint8_t> rep, def;
  std::vector<nlohmann::json> values;  // the present values, in order
};

class ChunkReader {
 public:
  ChunkReader(std::string_view file, const Leaf& leaf, const ColumnChunk& chunk,
              const ParquetLimits& limits, std::size_t& values_read)
      : file_(file), leaf_(leaf), chunk_(chunk), limits_(limits), values_read_(values_read) {}

  Column read() {
    if (chunk_.external) damaged("a column is stored in another file");
    if (chunk_.codec != kUncompressed && chunk_.codec != kSnappy && chunk_.codec != kGzip &&
        chunk_.codec != kZstd)
      damaged(
          fmt::format("column '{}' is compressed with {}, which aifc does not read "
                      "(it reads uncompressed, Snappy, GZIP and ZSTD files)",
                      column_name(), codec_name(chunk_.codec)));
    if (chunk_.physical != leaf_.node->physical)
      damaged(fmt::format("column '{}' has a type other than its schema's", column_name()));
    std::int64_t start = chunk_.data_offset;
    if (chunk_.dictionary_offset > 0 && chunk_.dictionary_offset < start)
      start = chunk_.dictionary_offset;
    if (start < 4 || chunk_.compressed_size < 0 ||
        static_cast<std::uint64_t>(start) > file_.size() ||
        static_cast<std::uint64_t>(chunk_.compressed_size) > file_.size() - start)
      damaged(fmt::format("column '{}' lies outside the file", column_name()));
    Bytes in(reinterpret_cast<const std::uint8_t*>(file_.data()) + start,
             static_cast<std::size_t>(chunk_.compressed_size));
    Column column;
    std::size_t entries = 0;
    while (entries < static_cast<std::uint64_t>(std::max<std::int64_t>(chunk_.num_values, 0)) &&
           in.left() > 0)
      entries += read_page(in, column);
    if (entries < static_cast<std::uint64_t>(std::max<std::int64_t>(chunk_.num_values, 0)))
      damaged(
          fmt::format("column '{}' ends before its {} values", column_name(), chunk_.num_values));
    return column;
  }

 private:
  std::string column_name() const { return fmt::format("{}", fmt::join(chunk_.path, ".")); }

  struct PageHeader {
    std::int64_t type = -1, uncompressed = 0, compressed = 0;
    std::int64_t num_values = 0, num_nulls = 0, encoding = 0, def_encoding = kRle,
                 rep_encoding = kRle, def_bytes = 0, rep_bytes = 0;
    bool values_compressed = true;
  };

  PageHeader read_page_header(Bytes& in) {
    Thrift t(in);
    PageHeader h;
    t.read_struct([&](std::int64_t id, int) {
      switch (id) {
        case 1:
          h.type = t.integer();
          return true;
        case 2:
          h.uncompressed = t.integer();
          return true;
        case 3:
          h.compressed = t.integer();
          return true;
        case 5:  // data page v1
        case 7:  // dictionary
          t.read_struct([&](std::int64_t f, int) {
            switch (f) {
              case 1:
                h.num_values = t.integer();
                return true;
              case 2:
                h.encoding = t.integer();
                return true;
              case 3:
                if (id != 5) return false;
                h.def_encoding = t.integer();
                return true;
              case 4:
                if (id != 5) return false;
                h.rep_encoding = t.integer();
                return true;
              default:
                return false;
            }
          });
          return true;
        case 8:  // data page v2
          t.read_struct([&](std::int64_t f, int type) {
            switch (f) {
              case 1:
                h.num_values = t.integer();
                return true;
              case 2:
                h.num_nulls = t.integer();
                return true;
              case 4:
                h.encoding = t.integer();
                return true;
              case 5:
                h.def_bytes = t.integer();
                return true;
              case 6:
                h.rep_bytes = t.integer();
                return true;
              case 7:
                h.values_compressed = t.boolean(type);
                return true;
              default:
                return false;
            }
          });
          return true;
        default:
          return false;
      }
    });
    return h;
  }

  // Returns how many entries (values and nulls) the page added.
  std::size_t read_page(Bytes& in, Column& column) {
    const PageHeader h = read_page_header(in);
    if (h.compressed < 0 || static_cast<std::uint64_t>(h.compressed) > in.left())
      damaged(fmt::format("a page of column '{}' runs past its chunk", column_name()));
    if (h.uncompressed < 0 || static_cast<std::uint64_t>(h.uncompressed) > limits_.max_page_bytes)
      damaged(fmt::format("a page of column '{}' claims {} bytes", column_name(), h.uncompressed));
    const auto* body = in.take(static_cast<std::size_t>(h.compressed));
    if (h.type == kDictionaryPage) {
      const std::string plain = uncompress(body, static_cast<std::size_t>(h.compressed),
                                           static_cast<std::size_t>(h.uncompressed));
      if (h.encoding != kPlain && h.encoding != kPlainDictionary)
        damaged(fmt::format("a dictionary of column '{}' is {}-encoded", column_name(),
                            encoding_name(h.encoding)));
      dictionary_.clear();
      count(h.num_values);
      Bytes values(reinterpret_cast<const std::uint8_t*>(plain.data()), plain.size());
      read_plain(values, static_cast<std::size_t>(h.num_values), dictionary_);
      return 0;
    }
    if (h.type != kDataPage && h.type != kDataPageV2) return 0;  // index pages: nothing to read
    count(h.num_values);
    const auto n = static_cast<std::size_t>(h.num_values);
    std::string page;
    Bytes levels(nullptr, 0);
    Bytes values(nullptr, 0);
    if (h.type == kDataPage) {
      page = uncompress(body, static_cast<std::size_t>(h.compressed),
                        static_cast<std::size_t>(h.uncompressed));
      Bytes all(reinterpret_cast<const std::uint8_t*>(page.data()), page.size());
      if (leaf_.max_rep > 0) read_v1_levels(all, h.rep_encoding, leaf_.max_rep, n, column.rep);
      if (leaf_.max_def > 0) read_v1_levels(all, h.def_encoding, leaf_.max_def, n, column.def);
      values = all;
    } else {
      if (h.rep_bytes < 0 || h.def_bytes < 0 || h.rep_bytes > h.compressed ||
          h.def_bytes > h.compressed - h.rep_bytes)
        damaged(fmt::format("a page of column '{}' has levels longer than itself", column_name()));
      const auto rep_bytes = static_cast<std::size_t>(h.rep_bytes);
      const auto def_bytes = static_cast<std::size_t>(h.def_bytes);
      if (leaf_.max_rep > 0)
        read_hybrid(Bytes(body, rep_bytes), bit_width(leaf_.max_rep), n, column.rep);
      if (leaf_.max_def > 0)
        read_hybrid(Bytes(body + rep_bytes, def_bytes), bit_width(leaf_.max_def), n, column.def);
      const std::size_t levels_size = rep_bytes + def_bytes;
      const std::size_t rest = static_cast<std::size_t>(h.compressed) - levels_size;
      if (h.values_compressed) {
        if (static_cast<std::size_t>(h.uncompressed) < levels_size)
          damaged(fmt::format("a page of column '{}' is shorter than its levels", column_name()));
        page = uncompress(body + levels_size, rest,
                          static_cast<std::size_t>(h.uncompressed) - levels_size);
      } else {
        page.assign(reinterpret_cast<const char*>(body + levels_size), rest);
      }
      values = Bytes(reinterpret_cast<const std::uint8_t*>(page.data()), page.size());
    }
    if (leaf_.max_rep == 0) column.rep.resize(column.rep.size() + n, 0);
    if (leaf_.max_def == 0) column.def.resize(column.def.size() + n, 0);
    std::size_t present = 0;
    for (std::size_t i = column.def.size() - n; i < column.def.size(); ++i) {
      if (column.def[i] > leaf_.max_def) damaged("a definition level beyond the schema's");
      if (column.rep[i] > leaf_.max_rep) damaged("a repetition level beyond the schema's");
      present += column.def[i] == leaf_.max_def;
    }
    if (h.encoding == kPlain) {
      read_plain(values, present, column.values);
    } else if (h.encoding == kPlainDictionary || h.encoding == kRleDictionary) {
      std::vector<std::uint32_t> indices;
      if (present > 0) {
        const int width = values.byte();  // read before the copy that read_hybrid takes
        read_hybrid(values, width, present, indices);
      }
      for (const auto index : indices) {
        if (index >= dictionary_.size())
          damaged(fmt::format("column '{}' points past its dictionary", column_name()));
        column.values.push_back(dictionary_[index]);
      }
    } else if (h.encoding == kRle && leaf_.node->physical == kBoolean) {
      // Booleans in data pages v2: a length, then the hybrid of one-bit values.
      const auto length = static_cast<std::size_t>(values.little_endian(4));
      std::vector<std::uint8_t> bits;
      read_hybrid(Bytes(values.take(length), length), 1, present, bits);
      for (const auto bit : bits) column.values.emplace_back(bit != 0);
    } else {
      damaged(
          fmt::format("column '{}' is {}-encoded, which aifc does not read (it reads PLAIN "
                      "and dictionary encodings)",
                      column_name(), encoding_name(h.encoding)));
    }
    return n;
  }

  void count(std::int64_t values) {
    if (values < 0 || static_cast<std::uint64_t>(values) > limits_.max_values - values_read_)
      damaged(fmt::format("the file holds more than {} values, more than aifc reads",
                          limits_.max_values));
    values_read_ += static_cast<std::size_t>(values);
  }

  void read_v1_levels(Bytes& in, std::int64_t encoding, int max_level, std::size_t n,
                      std::vector<std::uint8_t>& out) {
    if (encoding != kRle)
      damaged(fmt::format("column '{}' has {}-encoded levels, which aifc does not read",
                          column_name(), encoding_name(encoding)));
    const auto length = static_cast<std::size_t>(in.little_endian(4));
    read_hybrid(Bytes(in.take(length), length), bit_width(max_level), n, out);
  }

  std::string uncompress(const std::uint8_t* data, std::size_t size, std::size_t expected) {
    switch (chunk_.codec) {
      case kSnappy:
        // Snappy cannot expand more than this; a larger claim is a lie, not a big page.
        if (expected > size * 32 + 64)
          damaged(fmt::format("a page of column '{}' claims to unpack to {} bytes from {}",
                              column_name(), expected, size));
        return snappy_uncompress(data, size, expected);
      case kGzip:
        return gzip_uncompress(data, size, expected);
      case kZstd: {
        std::string out(expected, '\0');
        const std::size_t n = ZSTD_decompress(out.data(), out.size(), data, size);
        if (ZSTD_isError(n) || n != expected)
          damaged(fmt::format("a ZSTD page of column '{}' does not unpack to its {} bytes ({})",
                              column_name(), expected,
                              ZSTD_isError(n) ? ZSTD_getErrorName(n) : "a different size"));
        return out;
      }
      default:
        if (size != expected)
          damaged(fmt::format("an uncompressed page of column '{}' has two sizes", column_name()));
        return std::string(reinterpret_cast<const char*>(data), size);
    }
  }

  std::string gzip_uncompress(const std::uint8_t* data, std::size_t size, std::size_t expected) {
    if (size > UINT32_MAX || expected > UINT32_MAX)
      damaged(fmt::format("a GZIP page of column '{}' is beyond 4 GiB", column_name()));
    std::string out(expected, '\0');
    z_stream z{};
    if (inflateInit2(&z, 15 + 32) != Z_OK)  // 15 + 32: a gzip or a zlib header
      damaged("zlib cannot start");
    z.next_in = const_cast<Bytef*>(data);
    z.avail_in = static_cast<uInt>(size);
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(expected);
    const int rc = inflate(&z, Z_FINISH);
    const std::size_t produced = z.total_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END || produced != expected)
      damaged(fmt::format("a GZIP page of column '{}' does not unpack to its {} bytes",
                          column_name(), expected));
    return out;
  }

  void read_plain(Bytes& in, std::size_t n, std::vector<nlohmann::json>& out) {
    const int type = leaf_.node->physical;
    if (type == kBoolean) {
      if (n > in.left() * 8) damaged("the page holds fewer booleans than it claims");
      const auto* p = in.take((n + 7) / 8);
      for (std::size_t i = 0; i < n; ++i) out.emplace_back(((p[i / 8] >> (i % 8)) & 1) != 0);
      return;
    }
    for (std::size_t i = 0; i < n; ++i) {
      switch (type) {
        case kInt32:
          out.emplace_back(static_cast<std::int32_t>(in.little_endian(4)));
          break;
        case kInt64:
          out.emplace_back(static_cast<std::int64_t>(in.little_endian(8)));
          break;
        case kInt96:
          in.take(12);
          out.emplace_back(nullptr);
          break;
        case kFloat: {
          const auto bits = static_cast<std::uint32_t>(in.little_endian(4));
          float f;
          std::memcpy(&f, &bits, 4);
          out.emplace_back(static_cast<double>(f));
          break;
        }
        case kDouble: {
          const auto bits = in.little_endian(8);
          double d;
          std::memcpy(&d, &bits, 8);
          out.emplace_back(d);
          break;
        }
        case kByteArray: {
          const auto len = static_cast<std::size_t>(in.little_endian(4));
          out.emplace_back(as_utf8(in.take(len), len));
          break;
        }
        default: {  // fixed-length byte array
          if (leaf_.node->type_length < 0 ||
              static_cast<std::uint64_t>(leaf_.node->type_length) > in.left())
            damaged(fmt::format("column '{}' has a fixed length beyond its page", column_name()));
          const auto len = static_cast<std::size_t>(leaf_.node->type_length);
          out.emplace_back(as_utf8(in.take(len), len));
          break;
        }
      }
    }
  }

  std::string_view file_;
  const Leaf& leaf_;
  const ColumnChunk& chunk_;
  const ParquetLimits& limits_;
  std::size_t& values_read_;
  std::vector<nlohmann::json> dictionary_;
};

// Puts a column's entries into the rows (record assembly): each entry's repetition level says
// which list gets a new element, its definition level how far down its path is present.
void assemble(const Leaf& leaf, Column& column, std::vector<nlohmann::json>& rows,
              bool first_column) {
  const std::size_t depth = leaf.path.size();
  std::vector<std::size_t> index(depth, 0);
  std::size_t value = 0;
  std::size_t row = 0;
  bool started = false;
  for (std::size_t e = 0; e < column.def.size(); ++e) {
    const int r = column.rep[e];
    const int d = column.def[e];
    if (r == 0) {
      if (started) ++row;
      started = true;
      std::fill(index.begin(), index.end(), 0);
      if (first_column) {
        rows.emplace_back(nlohmann::json::object());
      } else if (row >= rows.size()) {
        damaged(fmt::format("column '{}' has more rows than the others", leaf.node->name));
      }
    } else {
      if (!started) damaged("a column's first value continues a list");
      for (std::size_t i = 0; i < depth; ++i) {
        if (leaf.path[i]->repetition != kRepeated) continue;
        if (leaf.rep_at[i] == r)
          ++index[i];
        else if (leaf.rep_at[i] > r)
          index[i] = 0;
      }
    }
    nlohmann::json* at = &rows[row];
    for (std::size_t i = 0; i < depth; ++i) {
      const Node& node = *leaf.path[i];
      if (!at->is_null() && !at->is_object()) damaged("a value where the schema has a group");
      nlohmann::json& field = (*at)[node.name];
      if (node.repetition == kRepeated) {
        if (field.is_null()) field = nlohmann::json::array();
        if (!field.is_array()) damaged("a value where the schema has a list");
        if (d < leaf.def_at[i]) break;  // an empty list
        // A new element is at most one past the last: an index further on is a damaged file.
        if (index[i] > field.size()) damaged("a list skips elements");
        if (index[i] == field.size()) field.push_back(nullptr);
        at = &field[index[i]];
      } else {
        if (d < leaf.def_at[i]) break;  // null here (the field stays null)
        at = &field;
      }
      if (i + 1 == depth) {
        if (value >= column.values.size()) damaged("a column has fewer values than levels");
        *at = std::move(column.values[value++]);
      }
    }
  }
  if (!started && !rows.empty() && !first_column)
    damaged(fmt::format("column '{}' has fewer rows than the others", leaf.node->name));
  if (started && row + 1 != rows.size())
    damaged(fmt::format("column '{}' has fewer rows than the others", leaf.node->name));
}

// Turns the raw shape of lists and maps (a group holding a repeated group) into JSON arrays and
// objects, bottom up.
void finish(nlohmann::json& v, const Node& node, int depth = 0) {
  if (depth > 64) damaged("the schema nests too deep");
  if (node.children.empty() || !v.is_object()) return;
  for (const auto& child : node.children) {
    const auto at = v.find(child->name);
    if (at == v.end()) continue;
    if (child->repetition == kRepeated && at->is_array()) {
      for (auto& element : *at) finish(element, *child, depth + 1);
    } else {
      finish(*at, *child, depth + 1);
    }
  }
  if ((!node.list && !node.map) || node.children.size() != 1) return;
  const Node& repeated = *node.children[0];
  if (repeated.repetition != kRepeated) return;
  nlohmann::json elements =
      v.contains(repeated.name) ? std::move(v[repeated.name]) : nlohmann::json::array();
  if (node.list) {
    // The standard three-level list wraps each element in a one-field group; the older forms
    // named "array" or "<list>_tuple" are the element themselves.
    const bool wrapped = repeated.children.size() == 1 && repeated.name != "array" &&
                         repeated.name != node.name + "_tuple";
    if (wrapped) {
      const std::string& inner = repeated.children[0]->name;
      for (auto& e : elements)
        e = e.is_object() && e.contains(inner) ? std::move(e[inner]) : nlohmann::json(nullptr);
    }
    v = std::move(elements);
    return;
  }
  // A map: an object when every key is text, otherwise its [{key, value}] entries as they are.
  nlohmann::json object = nlohmann::json::object();
  for (auto& e : elements) {
    if (!e.is_object() || !e.contains("key") || !e["key"].is_string()) {
      v = std::move(elements);
      return;
    }
    object[e["key"].get<std::string>()] = e.contains("value") ? std::move(e["value"]) : nullptr;
  }
  v = std::move(object);
}

void read_rows(std::string_view bytes,
               const std::function<void(nlohmann::json&&, std::int64_t)>& on_row,
               const ParquetLimits& limits) {
  if (bytes.size() < 12 || bytes.substr(0, 4) != "PAR1" || bytes.substr(bytes.size() - 4) != "PAR1")
    damaged("not a Parquet file (no PAR1 at both ends)");
  const auto* data = reinterpret_cast<const std::uint8_t*>(bytes.data());
  Bytes length_field(data + bytes.size() - 8, 4);
  const auto footer_length = length_field.little_endian(4);
  if (footer_length > bytes.size() - 12) damaged("its footer is longer than the file");
  const FileMetaData meta = read_footer(
      Bytes(data + bytes.size() - 8 - footer_length, static_cast<std::size_t>(footer_length)));
  std::vector<Leaf> leaves;
  const auto root = build_schema(meta.schema, leaves);
  std::size_t values_read = 0;
  std::int64_t row_index = 0;
  for (const auto& group : meta.row_groups) {
    if (group.columns.size() != leaves.size())
      damaged(fmt::format("a row group has {} columns where the schema has {}",
                          group.columns.size(), leaves.size()));
    std::vector<nlohmann::json> rows;
    for (std::size_t c = 0; c < leaves.size(); ++c) {
      const auto& chunk = group.columns[c];
      std::vector<std::string> expected;
      for (const Node* p : leaves[c].path) expected.push_back(p->name);
      if (chunk.path != expected)
        damaged(fmt::format("column {} is '{}' where the schema has '{}'", c,
                            fmt::join(chunk.path, "."), fmt::join(expected, ".")));
      Column column = ChunkReader(bytes, leaves[c], chunk, limits, values_read).read();
      assemble(leaves[c], column, rows, c == 0);
    }
    for (auto& row : rows) {
      finish(row, *root);
      on_row(std::move(row), row_index++);
    }
  }
}

}  // namespace

bool looks_like_parquet(std::string_view head) noexcept { return head.substr(0, 4) == "PAR1"; }

void for_each_parquet_row(
    std::string_view bytes, const std::string& name,
    const std::function<void(nlohmann::json&& row, std::int64_t index)>& on_row,
    const ParquetLimits& limits) {
  try {
    read_rows(bytes, on_row, limits);
  } catch (const Damaged& e) {
    throw Error(ErrorCode::parse_error, fmt::format("'{}' (Parquet): {}", name, e.what()));
  } catch (const nlohmann::json::exception& e) {
    throw Error(ErrorCode::parse_error, fmt::format("'{}' (Parquet): {}", name, e.what()));
  }
}

}  // namespace aifc::detail
