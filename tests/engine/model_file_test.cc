// Writer -> reader round trips and the reader's rejection of damaged files.
#include "engine/format/model_file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/atomic_file.h"
#include "engine/format/model_writer.h"
#include "engine/graph/model.h"
#include "engine/testing/random_model.h"
#include "gtest/gtest.h"

namespace flexor {
namespace {

namespace mv1 = model::v1;

std::string Build(RandomArch arch, const std::string& method, int planes = 1) {
  RandomModelSpec spec;
  spec.name = "m_" + method;
  spec.arch = arch;
  spec.method = method;
  spec.planes = planes;
  absl::StatusOr<std::string> bytes = BuildRandomModel(spec);
  EXPECT_TRUE(bytes.ok()) << bytes.status();
  return bytes.ok() ? *bytes : std::string();
}

absl::Status LoadBytes(const std::string& bytes) {
  absl::StatusOr<std::shared_ptr<const ModelFile>> file =
      ModelFile::FromBytes(bytes, "test.flexor");
  if (!file.ok()) return file.status();
  return Model::Compile(*file).status();
}

// Re-packs `bytes` with a modified header (valid preamble and checksums), to
// test the graph-level validation behind the file-level checks.
std::string WithHeader(const std::string& bytes, const mv1::ModelHeader& h) {
  uint64_t payload_offset;
  std::memcpy(&payload_offset, bytes.data() + 24, 8);
  std::string header;
  h.SerializeToString(&header);
  const uint64_t new_offset = (kPreambleSize + header.size() + 63) / 64 * 64;
  std::string out(new_offset, '\0');
  std::memcpy(&out[0], bytes.data(), 8);
  const uint32_t version = kModelFormatVersion;
  const uint32_t size = static_cast<uint32_t>(header.size());
  const uint32_t crc = ModelCrc32(
      reinterpret_cast<const uint8_t*>(header.data()), header.size());
  std::memcpy(&out[8], &version, 4);
  std::memcpy(&out[12], &size, 4);
  std::memcpy(&out[16], &crc, 4);
  std::memcpy(&out[24], &new_offset, 8);
  std::memcpy(&out[kPreambleSize], header.data(), header.size());
  return out + bytes.substr(payload_offset);
}

mv1::ModelHeader HeaderOf(const std::string& bytes) {
  return (*ModelFile::FromBytes(bytes, "x"))->header();
}

TEST(ModelDescribeTest, StepsShowTheirOwnOutputShapes) {
  // pool2's output is then flattened (an alias of the same buffer): the
  // step still shows [16, 5, 5], and the folded conv+bn+relu its own shape.
  absl::StatusOr<std::shared_ptr<const ModelFile>> file =
      ModelFile::FromBytes(Build(RandomArch::kLeNet, "flexor"), "d");
  ASSERT_TRUE(file.ok());
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Compile(*file);
  ASSERT_TRUE(model.ok()) << model.status();
  const std::string text = (*model)->Describe();
  EXPECT_NE(text.find("-> [16, 5, 5]"), std::string::npos) << text;
  EXPECT_NE(text.find("conv2+bn2+relu2"), std::string::npos) << text;
  EXPECT_EQ(text.find("-> [400]"), std::string::npos) << text;
}

TEST(ModelDescribeTest, ReleasedHeaderStillReportsEveryMetadataField) {
  // A compiled model that owns its file keeps a compact header (no graph,
  // no description or provenance: ModelFile::ReleaseGraph); what is served
  // stays, and Describe (inspect) still shows the rest, read from the file.
  RandomModelSpec spec;
  spec.name = "described";
  spec.labels = {"zero", "one", "two",   "three", "four",
                 "five", "six", "seven", "eight", "a rather long label nine"};
  absl::StatusOr<std::string> bytes = BuildRandomModel(spec);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  for (ModelFileAccess access :
       {ModelFileAccess::kCopy, ModelFileAccess::kMap}) {
    SCOPED_TRACE(ModelFileAccessName(access));
    const std::string path =
        (std::filesystem::path(testing::TempDir()) /
         absl::StrCat("described_", ModelFileAccessName(access), ".flexor"))
            .string();
    ASSERT_TRUE(WriteFileAtomically(path, *bytes).ok());
    absl::StatusOr<std::shared_ptr<const Model>> model =
        Model::Load(path, access);
    ASSERT_TRUE(model.ok()) << model.status();
    const mv1::ModelHeader& kept = (*model)->file().header();
    EXPECT_EQ(kept.nodes_size(), 0);
    EXPECT_EQ(kept.tensors_size(), 0);
    EXPECT_EQ(kept.metadata().name(), "described");
    EXPECT_EQ(kept.metadata().method(), spec.method);
    EXPECT_EQ(kept.metadata().labels_size(), 0);  // moved to label()
    ASSERT_EQ((*model)->file().num_labels(), 10);
    EXPECT_EQ((*model)->file().label(0), "zero");
    EXPECT_EQ((*model)->file().label(5), "five");
    EXPECT_EQ((*model)->file().label(9), "a rather long label nine");
    EXPECT_EQ((*model)->input().name(), "image");
    EXPECT_TRUE((*model)->input().accepts_uint8());
    EXPECT_EQ(std::vector<int64_t>((*model)->input().shape().begin(),
                                   (*model)->input().shape().end()),
              (std::vector<int64_t>{1, 28, 28}));
    EXPECT_EQ((*model)->output().shape_size(), 1);
    EXPECT_TRUE(kept.metadata().description().empty());
    EXPECT_TRUE(kept.metadata().provenance().empty());

    absl::StatusOr<mv1::Metadata> full = (*model)->file().FullMetadata();
    ASSERT_TRUE(full.ok()) << full.status();
    EXPECT_EQ(full->description(), "random weights (tests, demos, benchmarks)");
    EXPECT_EQ(full->provenance().at("generator"), "BuildRandomModel");
    EXPECT_EQ(full->labels_size(), 10);
    const std::string text = (*model)->Describe();
    EXPECT_NE(text.find("description:  random weights"), std::string::npos)
        << text;
    EXPECT_NE(text.find("provenance:   generator = BuildRandomModel"),
              std::string::npos)
        << text;
    EXPECT_NE(text.find("provenance:   seed = "), std::string::npos) << text;
    EXPECT_NE(text.find("model:        described"), std::string::npos) << text;
    std::filesystem::remove(path);
  }
  // A file still shared (opened, then compiled) keeps its whole header.
  absl::StatusOr<std::shared_ptr<const ModelFile>> file =
      ModelFile::FromBytes(*bytes, "shared");
  ASSERT_TRUE(file.ok());
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Compile(*file);
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_GT((*file)->header().nodes_size(), 0);
  EXPECT_FALSE((*file)->header().metadata().description().empty());
  ASSERT_EQ((*file)->num_labels(), 10);
  EXPECT_EQ((*file)->label(9), "a rather long label nine");
  EXPECT_NE((*model)->Describe().find("provenance:   generator"),
            std::string::npos);
}

TEST(ModelDescribeTest, ReadFileKeepsOnlyItsPayload) {
  // kCopy keeps the payload, not the header's bytes: the full metadata is
  // read again from the file, and only if its header is still the one
  // checked at open. The loaded model keeps serving either way.
  RandomModelSpec spec;
  spec.name = "payload_only";
  absl::StatusOr<std::string> bytes = BuildRandomModel(spec);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  const std::string path =
      (std::filesystem::path(testing::TempDir()) /
       absl::StrCat("payload_only_", ::getpid(), ".flexor"))
          .string();
  ASSERT_TRUE(WriteFileAtomically(path, *bytes).ok());
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Load(path);
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_TRUE((*model)->file().FullMetadata().ok());

  // Another model under the same name: a different header.
  spec.name = "replaced";
  absl::StatusOr<std::string> other = BuildRandomModel(spec);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(WriteFileAtomically(path, *other).ok());
  absl::StatusOr<mv1::Metadata> full = (*model)->file().FullMetadata();
  EXPECT_EQ(full.status().code(), absl::StatusCode::kDataLoss) << full.status();
  EXPECT_NE(full.status().message().find("changed since"), std::string::npos)
      << full.status();
  // Describe falls back to what is kept, and the model still runs.
  EXPECT_NE((*model)->Describe().find("model:        payload_only"),
            std::string::npos);
  std::vector<float> in(static_cast<size_t>((*model)->input_size()), 0.5f);
  std::vector<float> out(static_cast<size_t>((*model)->output_size()));
  EXPECT_TRUE((*model)->Run(in.data(), 1, out.data()).ok());

  std::filesystem::remove(path);
  full = (*model)->file().FullMetadata();
  EXPECT_EQ(full.status().code(), absl::StatusCode::kNotFound) << full.status();
}

TEST(ModelWriterTest, SameModelSameBytes) {
  // Provenance is a protobuf map: without deterministic serialisation its
  // entries come out in hash order, and two writes of one model differ.
  for (int i = 0; i < 5; ++i) {
    ModelWriter a("m"), b("m");
    for (ModelWriter* w : {&a, &b}) {
      w->AddInput("x", {3}, false);
      w->AddNode("r", {"x"}, "y")->mutable_relu();
      w->AddOutput("y", {3});
      for (int k = 0; k < 20; ++k) {
        (*w->metadata().mutable_provenance())[absl::StrCat("key", k, "_", i)] =
            absl::StrCat(k);
      }
    }
    EXPECT_EQ(*a.Serialize(), *b.Serialize());
  }
  EXPECT_EQ(Build(RandomArch::kLeNet, "flexor"),
            Build(RandomArch::kLeNet, "flexor"));
}

struct RoundTripCase {
  RandomArch arch;
  std::string method;
  int planes;
};

class RoundTripTest : public testing::TestWithParam<RoundTripCase> {};

TEST_P(RoundTripTest, WrittenFileLoadsRunsAndKeepsEveryField) {
  const RoundTripCase& c = GetParam();
  const std::string bytes = Build(c.arch, c.method, c.planes);
  // ctest runs each case as its own process, in parallel: one file each.
  const std::string path =
      (std::filesystem::path(testing::TempDir()) /
       absl::StrCat("rt_", ::getpid(), "_", c.method, "_", c.planes, "_",
                    static_cast<int>(c.arch), ".flexor"))
          .string();
  ASSERT_TRUE(WriteFileAtomically(path, bytes).ok());
  absl::StatusOr<std::shared_ptr<const Model>> model = Model::Load(path);
  ASSERT_TRUE(model.ok()) << model.status();
  absl::StatusOr<std::shared_ptr<const ModelFile>> opened =
      ModelFile::Open(path);
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_FALSE((*opened)->mapped());
  absl::StatusOr<std::shared_ptr<const Model>> map_model =
      Model::Load(path, ModelFileAccess::kMap);
  ASSERT_TRUE(map_model.ok()) << map_model.status();
  absl::StatusOr<std::shared_ptr<const ModelFile>> map_opened =
      ModelFile::Open(path, ModelFileAccess::kMap);
  ASSERT_TRUE(map_opened.ok()) << map_opened.status();
  EXPECT_TRUE((*map_opened)->mapped());
  EXPECT_TRUE((*map_model)->file().mapped());
  // A mapping outlives the name, as when a repository version is deleted.
  std::filesystem::remove(path);
  // A model that owns its file alone keeps metadata, inputs and outputs
  // but releases the parsed graph and tensor table (ModelFile::ReleaseGraph).
  EXPECT_EQ((*model)->file().file_size(), bytes.size());
  EXPECT_EQ((*model)->file().header().metadata().method(), c.method);
  EXPECT_EQ((*model)->file().header().inputs_size(), 1);
  EXPECT_EQ((*model)->file().header().nodes_size(), 0);
  EXPECT_EQ((*model)->file().header().tensors_size(), 0);
  // Read (kCopy) and mapped (kMap): every tensor is 64-byte aligned in
  // memory and byte-identical to the written file.
  for (const ModelFile* file : {opened->get(), map_opened->get()}) {
    SCOPED_TRACE(file->mapped() ? "map" : "copy");
    EXPECT_EQ(file->file_size(), bytes.size());
    EXPECT_EQ(file->header().metadata().method(), c.method);
    EXPECT_GT(file->header().tensors_size(), 0);
    EXPECT_EQ(file->header().tensors_size(),
              (*opened)->header().tensors_size());
    for (const mv1::TensorInfo& info : file->header().tensors()) {
      absl::StatusOr<TensorView> t = file->tensor(info.name());
      ASSERT_TRUE(t.ok());
      EXPECT_EQ(reinterpret_cast<uintptr_t>(t->data) % kTensorAlignment, 0u);
      uint64_t payload_offset;
      std::memcpy(&payload_offset, bytes.data() + 24, 8);
      ASSERT_EQ(t->size, info.length());
      EXPECT_EQ(
          std::memcmp(t->data, bytes.data() + payload_offset + info.offset(),
                      info.length()),
          0);
    }
  }
  // Runs, and produces probabilities.
  std::vector<float> image(2 * 784);
  std::mt19937 rng(1);
  for (float& v : image) v = static_cast<float>(rng() % 256);
  std::vector<float> out(2 * 10);
  ASSERT_TRUE((*model)->Run(image.data(), 2, out.data()).ok());
  // The mapped model computes exactly what the read one does, after its
  // file's name is gone.
  std::vector<float> map_out(2 * 10, -1.0f);
  ASSERT_TRUE((*map_model)->Run(image.data(), 2, map_out.data()).ok());
  EXPECT_EQ(std::memcmp(out.data(), map_out.data(), out.size() * sizeof(float)),
            0);
  EXPECT_EQ((*map_model)->stats().file_bytes, (*model)->stats().file_bytes);
  for (int b = 0; b < 2; ++b) {
    float sum = 0;
    for (int i = 0; i < 10; ++i) {
      ASSERT_TRUE(std::isfinite(out[b * 10 + i]));
      sum += out[b * 10 + i];
    }
    EXPECT_NEAR(sum, 1.0f, 1e-4);
  }
  const ModelStats& stats = (*model)->stats();
  EXPECT_GT(stats.num_weights, 0);
  if (c.method == "flexor") {
    EXPECT_NEAR(stats.bits_per_weight, 0.8 * c.planes, 1e-9);
  }
  if (c.method == "binary2") EXPECT_NEAR(stats.bits_per_weight, 2.0, 1e-9);
  EXPECT_NE((*model)->Describe().find("bit/weight"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(
    EveryCodecAndArch, RoundTripTest,
    testing::Values(RoundTripCase{RandomArch::kMlp, "fp32", 1},
                    RoundTripCase{RandomArch::kMlp, "binary1", 1},
                    RoundTripCase{RandomArch::kMlp, "binary2", 2},
                    RoundTripCase{RandomArch::kMlp, "ternary", 1},
                    RoundTripCase{RandomArch::kMlp, "flexor", 1},
                    RoundTripCase{RandomArch::kLeNet, "flexor", 2},
                    RoundTripCase{RandomArch::kLeNet, "ternary", 1},
                    RoundTripCase{RandomArch::kResNet, "flexor", 1},
                    RoundTripCase{RandomArch::kResNet, "fp32", 1}));

// Where a RejectionTest's bytes are loaded from: memory (FromBytes), or a
// real file read (kCopy) or mapped (kMap). Every case must give the same
// errors whichever way the bytes arrive.
enum class Source { kBytes, kCopyFile, kMapFile };

std::string SourceName(const testing::TestParamInfo<Source>& info) {
  switch (info.param) {
    case Source::kBytes:
      return "Bytes";
    case Source::kCopyFile:
      return "CopyFile";
    case Source::kMapFile:
      return "MapFile";
  }
  return "?";
}

// A file of its own under the test's temporary directory (ctest runs test
// cases as parallel processes), removed with the object.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& tag) {
    static int counter = 0;
    path_ = (std::filesystem::path(testing::TempDir()) /
             absl::StrCat("mf_", ::getpid(), "_", tag, "_", ++counter))
                .string();
  }
  ~ScratchFile() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class RejectionTest : public testing::TestWithParam<Source> {
 protected:
  void SetUp() override { good_ = Build(RandomArch::kLeNet, "flexor"); }
  absl::Status LoadBytes(const std::string& bytes) {
    if (GetParam() == Source::kBytes) return flexor::LoadBytes(bytes);
    ScratchFile file("rej");
    // Written in place (no rename): these files are never served.
    std::ofstream(file.path(), std::ios::binary) << bytes;
    return Model::Load(file.path(), GetParam() == Source::kMapFile
                                        ? ModelFileAccess::kMap
                                        : ModelFileAccess::kCopy)
        .status();
  }
  void ExpectRejected(const std::string& bytes, const std::string& needle) {
    absl::Status s = LoadBytes(bytes);
    EXPECT_FALSE(s.ok());
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_NE(s.message().find(needle), std::string::npos)
        << "expected '" << needle << "' in: " << s.message();
  }
  std::string good_;
};

INSTANTIATE_TEST_SUITE_P(FromMemoryAndFiles, RejectionTest,
                         testing::Values(Source::kBytes, Source::kCopyFile,
                                         Source::kMapFile),
                         SourceName);

TEST_P(RejectionTest, GoodFileLoads) { EXPECT_TRUE(LoadBytes(good_).ok()); }

TEST_P(RejectionTest, EveryTruncationIsRejected) {
  for (size_t len = 0; len < good_.size(); len += (len < 256 ? 1 : 97)) {
    absl::Status s = LoadBytes(good_.substr(0, len));
    ASSERT_FALSE(s.ok()) << "truncated to " << len;
  }
  ExpectRejected(good_.substr(0, 10), "preamble");
  ExpectRejected(good_.substr(0, good_.size() - 1), "past the end");
}

TEST_P(RejectionTest, FlippedBytesFailChecksums) {
  std::string bad = good_;
  bad[kPreambleSize + 5] ^= 0x10;  // inside the header
  ExpectRejected(bad, "header_crc32");
  bad = good_;
  bad[bad.size() - 100] ^= 0x01;  // inside the payload
  ExpectRejected(bad, "crc32 mismatch");
}

TEST_P(RejectionTest, RandomCorruptionNeverCrashes) {
  std::mt19937_64 rng(99);
  for (int i = 0; i < 300; ++i) {
    std::string bad = good_;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int f = 0; f < flips; ++f) bad[rng() % bad.size()] ^= 1 << (rng() % 8);
    (void)LoadBytes(bad);  // Any status is fine; UB/crash is not.
  }
}

TEST_P(RejectionTest, WrongMagicAndVersion) {
  std::string bad = good_;
  bad[0] = 'X';
  ExpectRejected(bad, "magic");
  bad = good_;
  const uint32_t v2 = 2;
  std::memcpy(&bad[8], &v2, 4);
  ExpectRejected(bad, "version 2");
}

TEST_P(RejectionTest, OffsetsPastTheEnd) {
  mv1::ModelHeader h = HeaderOf(good_);
  h.mutable_tensors(0)->set_offset(64ull << 30);
  ExpectRejected(WithHeader(good_, h), "past the end");
  h = HeaderOf(good_);
  h.mutable_tensors(1)->set_offset(h.tensors(1).offset() + 8);
  ExpectRejected(WithHeader(good_, h), "aligned");
  h = HeaderOf(good_);
  h.mutable_tensors(0)->set_length(h.tensors(0).length() + 4);
  ExpectRejected(WithHeader(good_, h), "length");
  std::string bad = good_;
  const uint64_t offset = bad.size() + 64;
  std::memcpy(&bad[24], &offset, 8);
  ExpectRejected(bad, "payload_offset");
}

TEST_P(RejectionTest, InconsistentShapes) {
  mv1::ModelHeader h = HeaderOf(good_);
  for (mv1::Node& node : *h.mutable_nodes()) {
    if (node.name() == "fc2") node.mutable_dense()->set_in_features(121);
  }
  ExpectRejected(WithHeader(good_, h), "in_features");
  h = HeaderOf(good_);
  h.mutable_outputs(0)->set_shape(0, 11);
  ExpectRejected(WithHeader(good_, h), "outputs[0].shape");
  h = HeaderOf(good_);
  for (mv1::Node& node : *h.mutable_nodes()) {
    if (node.name() == "conv2") node.mutable_conv2d()->set_in_channels(7);
  }
  ExpectRejected(WithHeader(good_, h), "in_channels");
  h = HeaderOf(good_);
  h.mutable_nodes(3)->set_inputs(0, "nowhere");
  ExpectRejected(WithHeader(good_, h), "nowhere");
}

TEST_P(RejectionTest, MalformedXorNetwork) {
  auto first_plane = [](mv1::ModelHeader& h) {
    for (mv1::Node& node : *h.mutable_nodes()) {
      if (node.has_conv2d()) {
        return node.mutable_conv2d()
            ->mutable_weights()
            ->mutable_binary()
            ->mutable_planes(0)
            ->mutable_xor_();
      }
    }
    return static_cast<mv1::XorNetwork*>(nullptr);
  };
  mv1::ModelHeader h = HeaderOf(good_);
  first_plane(h)->set_rows(3, first_plane(h)->rows(2));
  ExpectRejected(WithHeader(good_, h), "repeats");
  h = HeaderOf(good_);
  first_plane(h)->set_rows(0, uint64_t{1} << 30);
  ExpectRejected(WithHeader(good_, h), "tap");
  h = HeaderOf(good_);
  first_plane(h)->set_n_in(21);
  ExpectRejected(WithHeader(good_, h), "n_out");
  h = HeaderOf(good_);
  first_plane(h)->mutable_rows()->RemoveLast();
  ExpectRejected(WithHeader(good_, h), "rows");
  h = HeaderOf(good_);
  // Another layer's bits: right dtype, wrong [n_in, words] shape.
  for (mv1::Node& node : *h.mutable_nodes()) {
    if (node.name() == "conv1") {
      node.mutable_conv2d()
          ->mutable_weights()
          ->mutable_binary()
          ->mutable_planes(0)
          ->set_bits("fc1.plane0.bits");
    }
  }
  ExpectRejected(WithHeader(good_, h), "has shape");
  h = HeaderOf(good_);
  h.mutable_nodes(1)
      ->mutable_conv2d()
      ->mutable_weights()
      ->mutable_binary()
      ->mutable_planes(0)
      ->set_scales("fc1.plane0.bits");
  ExpectRejected(WithHeader(good_, h), "dtype");
}

TEST_P(RejectionTest, MissingFileIsNotFound) {
  for (ModelFileAccess access :
       {ModelFileAccess::kCopy, ModelFileAccess::kMap}) {
    absl::StatusOr<std::shared_ptr<const Model>> m =
        Model::Load("/nonexistent/model.flexor", access);
    EXPECT_EQ(m.status().code(), absl::StatusCode::kNotFound);
  }
}

class FileAccessTest : public testing::TestWithParam<ModelFileAccess> {};

INSTANTIATE_TEST_SUITE_P(
    CopyAndMap, FileAccessTest,
    testing::Values(ModelFileAccess::kCopy, ModelFileAccess::kMap),
    [](const testing::TestParamInfo<ModelFileAccess>& info) {
      return std::string(ModelFileAccessName(info.param));
    });

TEST_P(FileAccessTest, EmptyFileIsTooShort) {
  ScratchFile file("empty");
  std::ofstream(file.path(), std::ios::binary).flush();
  ASSERT_EQ(std::filesystem::file_size(file.path()), 0u);
  absl::StatusOr<std::shared_ptr<const ModelFile>> f =
      ModelFile::Open(file.path(), GetParam());
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("file is 0 bytes, shorter than the "
                                      "32-byte preamble"),
            std::string::npos)
      << f.status();
}

TEST_P(FileAccessTest, DirectoryAndFifoAreNotRegularFiles) {
  ScratchFile dir("dir");
  ASSERT_TRUE(std::filesystem::create_directory(dir.path()));
  absl::StatusOr<std::shared_ptr<const ModelFile>> f =
      ModelFile::Open(dir.path(), GetParam());
  ASSERT_FALSE(f.ok());
  EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(f.status().message().find("not a regular file (a directory)"),
            std::string::npos)
      << f.status();
  // A FIFO without a writer: refused at once, not a blocked open().
  ScratchFile fifo("fifo");
  ASSERT_EQ(::mkfifo(fifo.path().c_str(), 0600), 0);
  f = ModelFile::Open(fifo.path(), GetParam());
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("not a regular file"), std::string::npos)
      << f.status();
  f = ModelFile::Open("/dev/null", GetParam());
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("not a regular file"), std::string::npos)
      << f.status();
}

// Reading and mapping the same damaged file give the very same status.
TEST(ModelFileAccessTest, MapAndCopyRejectWithIdenticalErrors) {
  const std::string good = Build(RandomArch::kLeNet, "flexor");
  std::vector<std::string> damaged;
  for (size_t len : {size_t{0}, size_t{10}, size_t{31}, size_t{32}, size_t{100},
                     good.size() / 2, good.size() - 1}) {
    damaged.push_back(good.substr(0, len));
  }
  std::mt19937_64 rng(7);
  for (int i = 0; i < 40; ++i) {
    std::string bad = good;
    bad[rng() % bad.size()] ^= 1 << (rng() % 8);
    damaged.push_back(bad);
  }
  ScratchFile file("same");
  int rejected = 0;
  for (const std::string& bytes : damaged) {
    std::ofstream(file.path(), std::ios::binary | std::ios::trunc) << bytes;
    const absl::Status copy =
        Model::Load(file.path(), ModelFileAccess::kCopy).status();
    const absl::Status map =
        Model::Load(file.path(), ModelFileAccess::kMap).status();
    EXPECT_EQ(copy, map) << bytes.size() << " bytes";
    rejected += !copy.ok();
  }
  EXPECT_GE(rejected, 7);  // Every truncation, and flips outside padding.
}

TEST(ModelFileAccessTest, ParsesTheFlagValues) {
  EXPECT_EQ(*ParseModelFileAccess("copy"), ModelFileAccess::kCopy);
  EXPECT_EQ(*ParseModelFileAccess("map"), ModelFileAccess::kMap);
  EXPECT_STREQ(ModelFileAccessName(ModelFileAccess::kMap), "map");
  absl::StatusOr<ModelFileAccess> bad = ParseModelFileAccess("mmap");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'mmap' is not copy or map"),
            std::string::npos);
}

}  // namespace
}  // namespace flexor
