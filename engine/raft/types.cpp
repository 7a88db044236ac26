#include "engine/raft/types.h"

#include <algorithm>

namespace copycat::raft {

std::string_view toString(Role role) {
  switch (role) {
    case Role::Follower:
      return "follower";
    case Role::PreCandidate:
      return "pre-candidate";
    case Role::Candidate:
      return "candidate";
    case Role::Leader:
      return "leader";
  }
  return "?";
}

std::string_view toString(ConfigChange::Kind kind) {
  switch (kind) {
    case ConfigChange::Kind::AddLearner:
      return "add-learner";
    case ConfigChange::Kind::Promote:
      return "promote";
    case ConfigChange::Kind::AddVoter:
      return "add-voter";
    case ConfigChange::Kind::Demote:
      return "demote";
    case ConfigChange::Kind::Remove:
      return "remove";
  }
  return "?";
}

std::string_view toString(MessageType type) {
  switch (type) {
    case MessageType::PreVote:
      return "PreVote";
    case MessageType::PreVoteResponse:
      return "PreVoteResponse";
    case MessageType::Vote:
      return "Vote";
    case MessageType::VoteResponse:
      return "VoteResponse";
    case MessageType::Append:
      return "Append";
    case MessageType::AppendResponse:
      return "AppendResponse";
    case MessageType::Heartbeat:
      return "Heartbeat";
    case MessageType::HeartbeatResponse:
      return "HeartbeatResponse";
    case MessageType::InstallSnapshot:
      return "InstallSnapshot";
    case MessageType::InstallSnapshotResponse:
      return "InstallSnapshotResponse";
    case MessageType::TimeoutNow:
      return "TimeoutNow";
  }
  return "?";
}

namespace {

bool containsSorted(const std::vector<NodeId>& ids, NodeId id) {
  return std::binary_search(ids.begin(), ids.end(), id);
}

void insertSorted(std::vector<NodeId>& ids, NodeId id) {
  ids.insert(std::lower_bound(ids.begin(), ids.end(), id), id);
}

void eraseSorted(std::vector<NodeId>& ids, NodeId id) {
  ids.erase(std::lower_bound(ids.begin(), ids.end(), id));
}

}  // namespace

bool Membership::isVoter(NodeId id) const { return containsSorted(voters, id); }

bool Membership::isLearner(NodeId id) const { return containsSorted(learners, id); }

std::optional<Membership> Membership::apply(const ConfigChange& change) const {
  if (change.node == kNoNode) return std::nullopt;
  Membership next = *this;
  switch (change.kind) {
    case ConfigChange::Kind::AddLearner:
      if (contains(change.node)) return std::nullopt;
      insertSorted(next.learners, change.node);
      break;
    case ConfigChange::Kind::AddVoter:
      if (isVoter(change.node)) return std::nullopt;
      if (isLearner(change.node)) eraseSorted(next.learners, change.node);
      insertSorted(next.voters, change.node);
      break;
    case ConfigChange::Kind::Promote:
      if (!isLearner(change.node)) return std::nullopt;
      eraseSorted(next.learners, change.node);
      insertSorted(next.voters, change.node);
      break;
    case ConfigChange::Kind::Demote:
      if (!isVoter(change.node) || voters.size() == 1) return std::nullopt;
      eraseSorted(next.voters, change.node);
      insertSorted(next.learners, change.node);
      break;
    case ConfigChange::Kind::Remove:
      if (!contains(change.node)) return std::nullopt;
      if (isVoter(change.node)) {
        if (voters.size() == 1) return std::nullopt;
        eraseSorted(next.voters, change.node);
      } else {
        eraseSorted(next.learners, change.node);
      }
      break;
  }
  return next;
}

std::size_t Message::byteSize() const {
  std::size_t size = 64 + data.size();
  for (const Entry& entry : entries) size += entry.byteSize();
  return size;
}

std::string Message::describe() const {
  std::string text = std::string(toString(type)) + " " + std::to_string(from) + "->" +
                     std::to_string(to) + " t" + std::to_string(term);
  switch (type) {
    case MessageType::PreVote:
    case MessageType::Vote:
      text += " last=" + std::to_string(index) + "@t" + std::to_string(logTerm);
      if (context != 0) text += " transfer";
      break;
    case MessageType::PreVoteResponse:
    case MessageType::VoteResponse:
      text += reject ? " rejected" : " granted";
      break;
    case MessageType::Append:
      text += " prev=" + std::to_string(index) + "@t" + std::to_string(logTerm) +
              " n=" + std::to_string(entries.size()) + " commit=" + std::to_string(commit);
      if (context == 1) text += " (no answer)";
      break;
    case MessageType::AppendResponse:
      if (reject) {
        text += " reject " + std::to_string(index) + " hint=" + std::to_string(hintIndex) + "@t" +
                std::to_string(hintTerm);
      } else {
        text += " match=" + std::to_string(index);
      }
      break;
    case MessageType::Heartbeat:
    case MessageType::HeartbeatResponse:
      text += " commit=" + std::to_string(commit) + " ctx=" + std::to_string(context);
      break;
    case MessageType::InstallSnapshot:
      text += " snap=" + std::to_string(snapshot.index) + "@t" + std::to_string(snapshot.term) +
              " off=" + std::to_string(offset) + " len=" + std::to_string(data.size()) +
              (done ? " last" : "");
      break;
    case MessageType::InstallSnapshotResponse:
      text += " snap=" + std::to_string(snapshot.index) + " next=" + std::to_string(offset) +
              (done ? " installed" : "") + (reject ? " reject" : "");
      break;
    case MessageType::TimeoutNow:
      break;
  }
  return text;
}

}  // namespace copycat::raft
