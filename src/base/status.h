// Status and Result<T>: an operation's outcome as a value, carrying a message that names
// the resource and, for system errors, the errno text ("bind 127.0.0.1:8080: Address
// already in use"). Used instead of exceptions so that failures are visible in signatures.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace serverswap {

class Status {
 public:
  Status() = default;  // ok
  static Status error(std::string message) { return Status(std::move(message)); }
  // "<what>: <strerror(err)>"
  static Status system_error(const std::string& what, int err);

  bool ok() const { return !message_.has_value(); }
  const std::string& message() const {
    assert(!ok());
    return *message_;
  }
  // Prefixes context: Status::error("x").wrap("deploy") -> "deploy: x".
  Status wrap(const std::string& context) const {
    return ok() ? *this : Status(context + ": " + *message_);
  }

 private:
  explicit Status(std::string message) : message_(std::move(message)) {}
  std::optional<std::string> message_;
};

template <class T>
class Result {
 public:
  Result(T value) : value_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Status status) : value_(std::move(status)) { assert(!std::get<Status>(value_).ok()); }

  bool ok() const { return std::holds_alternative<T>(value_); }
  T& value() {
    assert(ok());
    return std::get<T>(value_);
  }
  const T& value() const {
    assert(ok());
    return std::get<T>(value_);
  }
  T& operator*() { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  Status status() const { return ok() ? Status() : std::get<Status>(value_); }

 private:
  std::variant<T, Status> value_;
};

}  // namespace serverswap
