// SPDX-License-Identifier: MIT OR Apache-2.0
pragma solidity 0.8.28;

/// A minimal ERC-20 (the OpenZeppelin semantics: checked balances, `Transfer`
/// and `Approval` events, an infinite allowance is never decreased) for
/// wake's execution benchmark.
///
/// The storage layout is part of the benchmark: its genesis writes balances
/// straight into storage instead of minting.
///   slot 0: balanceOf  (balanceOf[a] at keccak256(pad32(a) . pad32(0)))
///   slot 1: allowance  (allowance[o][s] at keccak256(pad32(s) . keccak256(pad32(o) . pad32(1))))
///   slot 2: totalSupply
contract BenchToken {
    mapping(address => uint256) public balanceOf;
    mapping(address => mapping(address => uint256)) public allowance;
    uint256 public totalSupply;

    event Transfer(address indexed from, address indexed to, uint256 value);
    event Approval(address indexed owner, address indexed spender, uint256 value);

    function name() external pure returns (string memory) {
        return "Wake Bench Token";
    }

    function symbol() external pure returns (string memory) {
        return "WBT";
    }

    function decimals() external pure returns (uint8) {
        return 18;
    }

    function transfer(address to, uint256 value) external returns (bool) {
        _transfer(msg.sender, to, value);
        return true;
    }

    function approve(address spender, uint256 value) external returns (bool) {
        allowance[msg.sender][spender] = value;
        emit Approval(msg.sender, spender, value);
        return true;
    }

    function transferFrom(address from, address to, uint256 value) external returns (bool) {
        uint256 allowed = allowance[from][msg.sender];
        if (allowed != type(uint256).max) {
            require(allowed >= value, "ERC20: insufficient allowance");
            unchecked {
                allowance[from][msg.sender] = allowed - value;
            }
        }
        _transfer(from, to, value);
        return true;
    }

    function _transfer(address from, address to, uint256 value) internal {
        require(to != address(0), "ERC20: transfer to the zero address");
        uint256 fromBalance = balanceOf[from];
        require(fromBalance >= value, "ERC20: transfer amount exceeds balance");
        unchecked {
            balanceOf[from] = fromBalance - value;
        }
        balanceOf[to] += value;
        emit Transfer(from, to, value);
    }
}
