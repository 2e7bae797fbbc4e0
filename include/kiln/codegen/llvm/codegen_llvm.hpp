#pragma once
// Loop IR to LLVM IR. Vector IR becomes LLVM vector instructions (vector, masked and gather/scatter
// memory operations); parallel loops are outlined into functions handed to the runtime's pool.
// The kernel is `void name(void** buffers, int64_t* sizes)` around an inner function whose
// buffer arguments are noalias (kiln's calls refuse overlapping outputs).
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>

#include "kiln/lower/lower.hpp"
#include "kiln/target.hpp"

namespace kiln::codegen {

class CodeGenLLVM {
public:
    // fp_contract: a*b + c may become one fma (BuildOptions::fp_contract).
    CodeGenLLVM(llvm::LLVMContext& ctx, llvm::Module& m, const Target& target, bool fp_contract = true)
            : ctx_(ctx), m_(m), b_(ctx), target_(target) {
        llvm::FastMathFlags fmf;
        fmf.setAllowContract(fp_contract);
        b_.setFastMathFlags(fmf);
    }

    llvm::Function* compile(const LoweredFunc& f, const std::string& symbol) {
        auto* ptr_t = llvm::PointerType::getUnqual(ctx_);
        // The inner function: noalias buffers, then the sizes.
        std::vector<llvm::Type*> params(f.args.size(), ptr_t);
        for (auto& v : f.size_vars) params.push_back(llvm_type(v.type()));
        auto* inner_t = llvm::FunctionType::get(b_.getVoidTy(), params, false);
        auto* inner = llvm::Function::Create(inner_t, llvm::Function::InternalLinkage, symbol + "_impl", m_);
        set_attributes(inner);
        for (size_t i = 0; i < f.args.size(); ++i) {
            inner->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::NoAlias);
            inner->addParamAttr(static_cast<unsigned>(i), llvm::Attribute::get(ctx_, llvm::Attribute::Alignment, 4));
        }
        begin_function(inner);
        for (size_t i = 0; i < f.args.size(); ++i) {
            buffers_[f.args[i].buffer.get()] = {inner->getArg(static_cast<unsigned>(i)), f.args[i].op->dtype};
            inner->getArg(static_cast<unsigned>(i))->setName(f.args[i].op->name);
        }
        for (size_t j = 0; j < f.size_vars.size(); ++j) {
            auto* a = inner->getArg(static_cast<unsigned>(f.args.size() + j));
            a->setName(f.size_vars[j].name());
            vars_[f.size_vars[j].get()] = a;
        }
        emit(f.body);
        b_.CreateRetVoid();

        // The packed entry point the runtime calls.
        auto* outer_t = llvm::FunctionType::get(b_.getVoidTy(), {ptr_t, ptr_t}, false);
        auto* outer = llvm::Function::Create(outer_t, llvm::Function::ExternalLinkage, symbol, m_);
        set_attributes(outer);
        auto* entry = llvm::BasicBlock::Create(ctx_, "entry", outer);
        b_.SetInsertPoint(entry);
        std::vector<llvm::Value*> call_args;
        for (size_t i = 0; i < f.args.size(); ++i) {
            auto* slot = b_.CreateConstGEP1_64(ptr_t, outer->getArg(0), i);
            call_args.push_back(b_.CreateLoad(ptr_t, slot));
        }
        for (size_t j = 0; j < f.size_vars.size(); ++j) {
            auto* slot = b_.CreateConstGEP1_64(b_.getInt64Ty(), outer->getArg(1), j);
            call_args.push_back(
                    b_.CreateIntCast(b_.CreateLoad(b_.getInt64Ty(), slot), llvm_type(f.size_vars[j].type()), true));
        }
        b_.CreateCall(inner, call_args);
        b_.CreateRetVoid();
        std::string err;
        llvm::raw_string_ostream es(err);
        if (llvm::verifyFunction(*inner, &es) || llvm::verifyFunction(*outer, &es))
            kiln::detail::internal_fail("kiln generated invalid LLVM IR for '", f.name, "': ", es.str());
        return outer;
    }

private:
    struct BufferInfo {
        llvm::Value* ptr;
        Type dtype;
    };

    void set_attributes(llvm::Function* fn) {
        if (!target_.cpu.empty()) fn->addFnAttr("target-cpu", target_.cpu);
        if (!target_.features.empty()) fn->addFnAttr("target-features", target_.features);
        if (target_.vector_bits > 0) {
            fn->addFnAttr("prefer-vector-width", std::to_string(target_.vector_bits));
            fn->addFnAttr("min-legal-vector-width", std::to_string(target_.vector_bits));
        }
        fn->addFnAttr(llvm::Attribute::NoUnwind);
    }

    void begin_function(llvm::Function* fn) {
        fn_ = fn;
        entry_ = llvm::BasicBlock::Create(ctx_, "entry", fn);
        auto* body = llvm::BasicBlock::Create(ctx_, "body", fn);
        b_.SetInsertPoint(entry_);
        b_.CreateBr(body);
        b_.SetInsertPoint(body);
    }

    llvm::Type* llvm_type(Type t) {
        llvm::Type* e = nullptr;
        switch (t.code) {
            case TypeCode::Bool: e = b_.getInt1Ty(); break;
            case TypeCode::Int:
            case TypeCode::UInt: e = b_.getIntNTy(t.bits); break;
            case TypeCode::Float:
                e = t.bits == 16 ? b_.getHalfTy() : t.bits == 32 ? b_.getFloatTy() : b_.getDoubleTy();
                break;
            case TypeCode::Handle: e = llvm::PointerType::getUnqual(ctx_); break;
        }
        return t.lanes > 1 ? llvm::VectorType::get(e, t.lanes, false) : e;
    }
    // Booleans are stored as bytes.
    llvm::Type* storage_type(Type t) {
        return t.element_of().is_bool() ? llvm_type(u8.with_lanes(t.lanes)) : llvm_type(t);
    }

    // Value numbering while emitting: an operation on operands already emitted in a block that dominates
    // this one is reused, not emitted again. Unrolled micro-kernels repeat the same address arithmetic in
    // every statement; emitting it once per loop body makes the module several times smaller, and LLVM's
    // time grows with the module it is given, not with the code that survives optimisation. The key is
    // the operands' LLVM values, so a variable rebound by a later let is a different key, never a stale one.
    struct ValueKey {
        int kind;
        uint32_t type;
        llvm::Value* ops[3];
        bool operator==(const ValueKey&) const = default;
    };
    struct ValueKeyHash {
        size_t operator()(const ValueKey& k) const {
            size_t h = std::hash<uint64_t>()((uint64_t(k.kind) << 32) | k.type);
            for (auto* p : k.ops) h = h * 1000003u ^ std::hash<const void*>()(p);
            return h;
        }
    };
    static uint32_t type_code(Type t) { return uint32_t(t.code) << 24 | uint32_t(t.bits) << 16 | t.lanes; }

    // Emits `make()` unless the same operation on the same operands is already available here.
    template <class Make> llvm::Value* numbered(const Expr& e, std::initializer_list<llvm::Value*> ops, Make make) {
        ValueKey k{static_cast<int>(e.kind()), type_code(e.type()), {nullptr, nullptr, nullptr}};
        size_t i = 0;
        for (auto* op : ops) k.ops[i++] = op;
        if (auto it = numbered_.find(k); it != numbered_.end()) return it->second;
        llvm::Value* v = make();
        numbered_.emplace(k, v);
        if (!numbered_scopes_.empty()) numbered_scopes_.back().push_back(k);
        return v;
    }

    // Values emitted inside a nested block (a loop body, one side of a branch) do not dominate the code
    // after it, so they are forgotten when it ends.
    void open_scope() { numbered_scopes_.emplace_back(); }
    void close_scope() {
        for (auto& k : numbered_scopes_.back()) numbered_.erase(k);
        numbered_scopes_.pop_back();
    }

    llvm::Value* emit(const Expr& e) {
        switch (e.kind()) {
            case ExprKind::IntImm:
                return llvm::ConstantInt::get(llvm_type(e.type()), static_cast<uint64_t>(e.as<IntImm>()->value),
                                              e.type().is_int());
            case ExprKind::FloatImm: return llvm::ConstantFP::get(llvm_type(e.type()), e.as<FloatImm>()->value);
            case ExprKind::Var: {
                auto it = vars_.find(e.as<VarNode>());
                if (it == vars_.end())
                    kiln::detail::internal_fail("codegen met unbound variable '", e.as<VarNode>()->name, "'");
                return it->second;
            }
            case ExprKind::Not: {
                llvm::Value* a = emit(e.as<Not>()->a);
                return numbered(e, {a}, [&] { return b_.CreateNot(a); });
            }
            case ExprKind::Select: {
                auto* n = e.as<Select>();
                // One condition for every lane choosing between loads (which input of a Concat a row comes
                // from): a branch, so only the chosen side is read.
                if (auto* bc = n->cond.as<Broadcast>(); bc && (reads_memory(n->t) || reads_memory(n->f)))
                    return emit_branch(emit(bc->value), n->t, n->f);
                llvm::Value *c = emit(n->cond), *t = emit(n->t), *f = emit(n->f);
                return numbered(e, {c, t, f}, [&] { return b_.CreateSelect(c, t, f); });
            }
            case ExprKind::Cast: {
                llvm::Value* v = emit(e.as<Cast>()->value);
                return numbered(e, {v}, [&] { return emit_cast(e.as<Cast>()->value.type(), e.type(), v); });
            }
            case ExprKind::Ramp: {
                auto* n = e.as<Ramp>();
                llvm::Value *base = emit(n->base), *stride = emit(n->stride);
                return numbered(e, {base, stride}, [&] {
                    std::vector<llvm::Constant*> steps;
                    for (int i = 0; i < n->lanes; ++i)
                        steps.push_back(llvm::ConstantInt::get(llvm_type(n->base.type()), i));
                    return b_.CreateAdd(
                            b_.CreateVectorSplat(n->lanes, base),
                            b_.CreateMul(b_.CreateVectorSplat(n->lanes, stride), llvm::ConstantVector::get(steps)));
                });
            }
            case ExprKind::Broadcast: {
                llvm::Value* v = emit(e.as<Broadcast>()->value);
                return numbered(e, {v}, [&] { return b_.CreateVectorSplat(e.as<Broadcast>()->lanes, v); });
            }
            case ExprKind::Load: return emit_load(e.as<Load>());
            case ExprKind::Let: {
                auto* n = e.as<Let>();
                vars_[n->var.get()] = emit(n->value);
                return emit(n->body);
            }
            case ExprKind::Call: return emit_call(e.as<Call>());
            case ExprKind::Reduce: kiln::detail::internal_fail("a reduction reached code generation");
            case ExprKind::Shuffle: return emit_shuffle(e.as<Shuffle>());
            default: {
                auto* n = static_cast<const BinaryNode*>(e.get());
                llvm::Value *a = emit(n->a), *b = emit(n->b);
                return numbered(e, {a, b}, [&] { return emit_binary(n, a, b); });
            }
        }
    }

    llvm::Value* emit_cast(Type from, Type to, llvm::Value* v) {
        llvm::Type* t = llvm_type(to);
        if (to.is_bool()) {
            if (from.is_float()) return b_.CreateFCmpUNE(v, llvm::Constant::getNullValue(v->getType()));
            return b_.CreateICmpNE(v, llvm::Constant::getNullValue(v->getType()));
        }
        if (from.is_float() && to.is_float()) return b_.CreateFPCast(v, t);
        if (from.is_float()) return to.is_int() ? b_.CreateFPToSI(v, t) : b_.CreateFPToUI(v, t);
        if (to.is_float()) return from.is_int() ? b_.CreateSIToFP(v, t) : b_.CreateUIToFP(v, t);
        return b_.CreateIntCast(v, t, from.is_int());
    }

    llvm::Value* emit_binary(const BinaryNode* n, llvm::Value* a, llvm::Value* b) {
        const Type t = n->a.type();
        const bool fp = t.is_float(), sgn = t.is_int();
        // Signed arithmetic of 32 bits or more does not overflow (as in C++ and TVM). Saying so lets
        // LLVM fold the 32-bit index arithmetic into 64-bit addresses directly instead of proving it
        // loop by loop, which was the largest part of compiling a convolution.
        const bool nsw = sgn && t.bits >= 32;
        switch (n->kind) {
            case ExprKind::Add: return fp ? b_.CreateFAdd(a, b) : b_.CreateAdd(a, b, "", false, nsw);
            case ExprKind::Sub: return fp ? b_.CreateFSub(a, b) : b_.CreateSub(a, b, "", false, nsw);
            case ExprKind::Mul: return fp ? b_.CreateFMul(a, b) : b_.CreateMul(a, b, "", false, nsw);
            case ExprKind::Div:
                if (fp) return b_.CreateFDiv(a, b);
                return floor_div_mod(a, b, true, n->b, sgn);
            case ExprKind::Mod:
                if (fp) {
                    llvm::Value* q = b_.CreateUnaryIntrinsic(llvm::Intrinsic::floor, b_.CreateFDiv(a, b));
                    return b_.CreateFSub(a, b_.CreateFMul(q, b));
                }
                return floor_div_mod(a, b, false, n->b, sgn);
            // Float minima and maxima give NaN when either operand is NaN, as ONNX's Max, Min and Relu do:
            // a NaN in `b` is kept by the outer select, one in `a` by the ordered comparison failing. The NaN
            // test is on `b` because a reduction's combiner is max(accumulator, value): the test then stays
            // off the loop-carried chain, which is one vmaxps and one blend (a max pool's window ran at 4.4
            // cycles a tap with the test on the accumulator).
            case ExprKind::Min:
                if (fp)
                    return b_.CreateSelect(b_.CreateFCmpUNO(b, b), b, b_.CreateSelect(b_.CreateFCmpOGT(a, b), b, a));
                return b_.CreateSelect(sgn ? b_.CreateICmpSLT(a, b) : b_.CreateICmpULT(a, b), a, b);
            case ExprKind::Max:
                if (fp)
                    return b_.CreateSelect(b_.CreateFCmpUNO(b, b), b, b_.CreateSelect(b_.CreateFCmpOLT(a, b), b, a));
                return b_.CreateSelect(sgn ? b_.CreateICmpSGT(a, b) : b_.CreateICmpUGT(a, b), a, b);
            case ExprKind::EQ: return fp ? b_.CreateFCmpOEQ(a, b) : b_.CreateICmpEQ(a, b);
            case ExprKind::NE: return fp ? b_.CreateFCmpUNE(a, b) : b_.CreateICmpNE(a, b);
            case ExprKind::LT:
                return fp ? b_.CreateFCmpOLT(a, b) : sgn ? b_.CreateICmpSLT(a, b) : b_.CreateICmpULT(a, b);
            case ExprKind::LE:
                return fp ? b_.CreateFCmpOLE(a, b) : sgn ? b_.CreateICmpSLE(a, b) : b_.CreateICmpULE(a, b);
            case ExprKind::GT:
                return fp ? b_.CreateFCmpOGT(a, b) : sgn ? b_.CreateICmpSGT(a, b) : b_.CreateICmpUGT(a, b);
            case ExprKind::GE:
                return fp ? b_.CreateFCmpOGE(a, b) : sgn ? b_.CreateICmpSGE(a, b) : b_.CreateICmpUGE(a, b);
            case ExprKind::And: return b_.CreateAnd(a, b);
            case ExprKind::Or: return b_.CreateOr(a, b);
            default: kiln::detail::internal_fail("unknown binary operator in codegen");
        }
    }

    // Integer division rounding towards negative infinity (signed) and the matching modulo. The CPU traps
    // on a zero divisor, and on INT_MIN / -1, in any lane, including the masked-off lanes of a vector
    // tail (their loads read zeros); so a divisor that is not a constant is made safe first, and x / 0 and
    // x % 0 are 0, where C and ONNX leave the result undefined.
    llvm::Value* floor_div_mod(llvm::Value* a, llvm::Value* b, bool div, const Expr& b_expr, bool sgn) {
        auto* c = as_const_int(b_expr);
        if (c && *c > 0 && (*c & (*c - 1)) == 0) {
            int shift = 0;
            while ((int64_t{1} << shift) < *c) ++shift;
            if (div)
                return sgn ? b_.CreateAShr(a, llvm::ConstantInt::get(a->getType(), shift))
                           : b_.CreateLShr(a, llvm::ConstantInt::get(a->getType(), shift));
            return b_.CreateAnd(a, llvm::ConstantInt::get(a->getType(), *c - 1));
        }
        llvm::Value* zero = llvm::Constant::getNullValue(a->getType());
        llvm::Value* one = llvm::ConstantInt::get(a->getType(), 1);
        const bool safe_constant = c && *c != 0 && (!sgn || *c != -1);
        llvm::Value* by_zero = safe_constant ? nullptr : b_.CreateICmpEQ(b, zero);
        llvm::Value* by_minus_one =
                safe_constant || !sgn ? nullptr : b_.CreateICmpEQ(b, llvm::Constant::getAllOnesValue(a->getType()));
        llvm::Value* bs = b;
        if (by_zero) bs = b_.CreateSelect(by_minus_one ? b_.CreateOr(by_zero, by_minus_one) : by_zero, one, b);
        if (!sgn) {
            llvm::Value* r = div ? b_.CreateUDiv(a, bs) : b_.CreateURem(a, bs);
            return by_zero ? b_.CreateSelect(by_zero, zero, r) : r;
        }
        llvm::Value* q = b_.CreateSDiv(a, bs);
        llvm::Value* r = b_.CreateSRem(a, bs);
        if (by_minus_one) q = b_.CreateSelect(by_minus_one, b_.CreateNeg(a), q);
        llvm::Value* fix = b_.CreateAnd(b_.CreateICmpNE(r, zero), b_.CreateICmpSLT(b_.CreateXor(r, b), zero));
        if (div) {
            q = b_.CreateSub(q, b_.CreateZExt(fix, a->getType()));
            return by_zero ? b_.CreateSelect(by_zero, zero, q) : q;
        }
        return b_.CreateAdd(r, b_.CreateSelect(fix, b, zero));
    }

    static bool reads_memory(const Expr& e) {
        bool found = false;
        post_order_visit(e, [&](const Expr& x) { found |= x.kind() == ExprKind::Load; });
        return found;
    }

    // `c ? t : f` evaluating only the chosen side.
    llvm::Value* emit_branch(llvm::Value* c, const Expr& t, const Expr& f) {
        auto* then_bb = llvm::BasicBlock::Create(ctx_, "ite.then", fn_);
        auto* else_bb = llvm::BasicBlock::Create(ctx_, "ite.else", fn_);
        auto* done_bb = llvm::BasicBlock::Create(ctx_, "ite.done", fn_);
        b_.CreateCondBr(c, then_bb, else_bb);
        b_.SetInsertPoint(then_bb);
        open_scope();
        llvm::Value* tv = emit(t);
        close_scope();
        auto* then_end = b_.GetInsertBlock();
        b_.CreateBr(done_bb);
        b_.SetInsertPoint(else_bb);
        open_scope();
        llvm::Value* fv = emit(f);
        close_scope();
        auto* else_end = b_.GetInsertBlock();
        b_.CreateBr(done_bb);
        b_.SetInsertPoint(done_bb);
        auto* phi = b_.CreatePHI(tv->getType(), 2);
        phi->addIncoming(tv, then_end);
        phi->addIncoming(fv, else_end);
        return phi;
    }

    llvm::Value* address(const Var& buf, llvm::Value* index, Type elem) {
        auto it = buffers_.find(buf.get());
        if (it == buffers_.end()) kiln::detail::internal_fail("codegen met unknown buffer '", buf.name(), "'");
        return b_.CreateInBoundsGEP(storage_type(elem), it->second.ptr,
                                    b_.CreateSExt(index, index->getType()->getWithNewBitWidth(64)));
    }

    // A ramp with stride 1 is one contiguous vector access; anything else gathers or scatters.
    const Ramp* dense_ramp(const Expr& index) {
        auto* r = index.as<Ramp>();
        return r && is_const_int(r->stride, 1) ? r : nullptr;
    }

    llvm::Value* emit_load(const Load* n) {
        const Type t = n->type;
        const Type elem = t.element_of();
        llvm::Type* st = storage_type(t);
        const llvm::Align align(static_cast<uint64_t>(std::max(1, elem.bytes())));
        llvm::Value* v;
        if (t.is_scalar()) {
            v = b_.CreateAlignedLoad(st, address(n->buffer, emit(n->index), elem), align);
        } else if (auto* r = dense_ramp(n->index)) {
            llvm::Value* p = address(n->buffer, emit(r->base), elem);
            if (n->predicate.defined())
                v = b_.CreateMaskedLoad(st, p, align, emit(n->predicate), llvm::Constant::getNullValue(st));
            else
                v = b_.CreateAlignedLoad(st, p, align);
        } else if (auto* bc = n->index.as<Broadcast>(); bc && !n->predicate.defined()) {
            llvm::Value* s = b_.CreateAlignedLoad(storage_type(elem), address(n->buffer, emit(bc->value), elem), align);
            v = b_.CreateVectorSplat(t.lanes, s);
        } else {
            llvm::Value* ptrs = address(n->buffer, emit(n->index), elem);
            llvm::Value* mask =
                    n->predicate.defined()
                            ? emit(n->predicate)
                            : llvm::Constant::getAllOnesValue(llvm::VectorType::get(b_.getInt1Ty(), t.lanes, false));
            v = b_.CreateMaskedGather(st, ptrs, align, mask, llvm::Constant::getNullValue(st));
        }
        if (elem.is_bool()) v = b_.CreateICmpNE(v, llvm::Constant::getNullValue(v->getType()));
        return v;
    }

    void emit_store(const Store* n) {
        const Type t = n->value.type();
        const Type elem = t.element_of();
        llvm::Value* v = emit(n->value);
        if (elem.is_bool()) v = b_.CreateZExt(v, storage_type(t));
        const llvm::Align align(static_cast<uint64_t>(std::max(1, elem.bytes())));
        if (t.is_scalar()) {
            b_.CreateAlignedStore(v, address(n->buffer, emit(n->index), elem), align);
        } else if (auto* r = dense_ramp(n->index)) {
            llvm::Value* p = address(n->buffer, emit(r->base), elem);
            if (n->predicate.defined())
                b_.CreateMaskedStore(v, p, align, emit(n->predicate));
            else
                b_.CreateAlignedStore(v, p, align);
        } else {
            llvm::Value* ptrs = address(n->buffer, emit(n->index), elem);
            llvm::Value* mask =
                    n->predicate.defined()
                            ? emit(n->predicate)
                            : llvm::Constant::getAllOnesValue(llvm::VectorType::get(b_.getInt1Ty(), t.lanes, false));
            b_.CreateMaskedScatter(v, ptrs, align, mask);
        }
    }

    // libm for the functions LLVM has no intrinsic for, lane by lane on vectors.
    llvm::Value* libm_call(const char* f32_name, const char* f64_name, llvm::Value* x) {
        llvm::Type* t = x->getType();
        llvm::Type* et = t->getScalarType();
        auto callee = m_.getOrInsertFunction(et->isDoubleTy() ? f64_name : f32_name,
                                             llvm::FunctionType::get(et, {et}, false));
        if (!t->isVectorTy()) return b_.CreateCall(callee, {x});
        const unsigned lanes = static_cast<unsigned>(llvm::cast<llvm::FixedVectorType>(t)->getNumElements());
        llvm::Value* out = llvm::PoisonValue::get(t);
        for (unsigned i = 0; i < lanes; ++i)
            out = b_.CreateInsertElement(out, b_.CreateCall(callee, {b_.CreateExtractElement(x, i)}), i);
        return out;
    }

    llvm::Value* emit_call(const Call* n) {
        using llvm::Intrinsic::ID;
        auto unary = [&](ID id) { return b_.CreateUnaryIntrinsic(id, emit(n->args[0])); };
        switch (n->op) {
            case Intrinsic::Exp: return unary(llvm::Intrinsic::exp);
            case Intrinsic::Log: return unary(llvm::Intrinsic::log);
            case Intrinsic::Sqrt: return unary(llvm::Intrinsic::sqrt);
            case Intrinsic::Abs: return unary(llvm::Intrinsic::fabs);
            case Intrinsic::Floor: return unary(llvm::Intrinsic::floor);
            case Intrinsic::Ceil: return unary(llvm::Intrinsic::ceil);
            case Intrinsic::Round: return unary(llvm::Intrinsic::roundeven);
            case Intrinsic::Rsqrt: {
                llvm::Value* s = unary(llvm::Intrinsic::sqrt);
                return b_.CreateFDiv(llvm::ConstantFP::get(s->getType(), 1.0), s);
            }
            case Intrinsic::Sigmoid: {
                llvm::Value* x = emit(n->args[0]);
                llvm::Value* one = llvm::ConstantFP::get(x->getType(), 1.0);
                llvm::Value* e = b_.CreateUnaryIntrinsic(llvm::Intrinsic::exp, b_.CreateFNeg(x));
                return b_.CreateFDiv(one, b_.CreateFAdd(one, e));
            }
            case Intrinsic::Tanh: return libm_call("tanhf", "tanh", emit(n->args[0]));
            case Intrinsic::Erf: return libm_call("erff", "erf", emit(n->args[0]));
            case Intrinsic::Pow:
                return b_.CreateBinaryIntrinsic(llvm::Intrinsic::pow, emit(n->args[0]), emit(n->args[1]));
            case Intrinsic::Fma: {
                llvm::Value* a = emit(n->args[0]);
                return b_.CreateIntrinsic(llvm::Intrinsic::fma, {a->getType()},
                                          {a, emit(n->args[1]), emit(n->args[2])});
            }
            case Intrinsic::Reinterpret: return b_.CreateBitCast(emit(n->args[0]), llvm_type(n->type));
            case Intrinsic::Likely: return emit(n->args[0]);
            case Intrinsic::Barrier: kiln::detail::internal_fail("a GPU barrier reached the LLVM backend");
            case Intrinsic::IfThenElse: {
                llvm::Value* c = emit(n->args[0]);
                if (c->getType()->isVectorTy()) return b_.CreateSelect(c, emit(n->args[1]), emit(n->args[2]));
                return emit_branch(c, n->args[1], n->args[2]);
            }
            case Intrinsic::TensorAccess: kiln::detail::internal_fail("a tensor access reached code generation");
        }
        return nullptr;
    }

    void emit(const Stmt& s) {
        switch (s.kind()) {
            case StmtKind::LetStmt: {
                auto* n = s.as<LetStmt>();
                vars_[n->var.get()] = emit(n->value);
                emit(n->body);
                return;
            }
            case StmtKind::For: {
                auto* n = s.as<For>();
                if (n->for_kind == ForKind::Parallel)
                    emit_parallel(n);
                else
                    emit_serial(n);
                return;
            }
            case StmtKind::Store: emit_store(s.as<Store>()); return;
            case StmtKind::Allocate: emit_allocate(s.as<Allocate>()); return;
            case StmtKind::IfThenElse: {
                auto* n = s.as<IfThenElse>();
                auto* then_bb = llvm::BasicBlock::Create(ctx_, "if.then", fn_);
                auto* else_bb = n->else_case.defined() ? llvm::BasicBlock::Create(ctx_, "if.else", fn_) : nullptr;
                auto* done_bb = llvm::BasicBlock::Create(ctx_, "if.done", fn_);
                b_.CreateCondBr(emit(n->cond), then_bb, else_bb ? else_bb : done_bb);
                b_.SetInsertPoint(then_bb);
                open_scope();
                emit(n->then_case);
                close_scope();
                b_.CreateBr(done_bb);
                if (else_bb) {
                    b_.SetInsertPoint(else_bb);
                    open_scope();
                    emit(n->else_case);
                    close_scope();
                    b_.CreateBr(done_bb);
                }
                b_.SetInsertPoint(done_bb);
                return;
            }
            case StmtKind::Block:
                for (auto& c : s.as<Block>()->stmts) emit(c);
                return;
            case StmtKind::Evaluate: return;
            case StmtKind::Provide:
            case StmtKind::Realize:
                kiln::detail::internal_fail("an unflattened tensor statement reached code generation");
        }
    }

    void emit_serial(const For* n) {
        llvm::Value* lo = emit(n->min);
        llvm::Value* hi = b_.CreateAdd(lo, emit(n->extent));
        auto* pre = b_.GetInsertBlock();
        auto* head = llvm::BasicBlock::Create(ctx_, n->var.name() + ".head", fn_);
        auto* body = llvm::BasicBlock::Create(ctx_, n->var.name() + ".body", fn_);
        auto* done = llvm::BasicBlock::Create(ctx_, n->var.name() + ".done", fn_);
        b_.CreateBr(head);
        b_.SetInsertPoint(head);
        auto* iv = b_.CreatePHI(lo->getType(), 2, n->var.name());
        iv->addIncoming(lo, pre);
        b_.CreateCondBr(b_.CreateICmpSLT(iv, hi), body, done);
        b_.SetInsertPoint(body);
        vars_[n->var.get()] = iv;
        open_scope();
        emit(n->body);
        close_scope();
        llvm::Value* next = b_.CreateAdd(iv, llvm::ConstantInt::get(iv->getType(), 1), "", true, true);
        iv->addIncoming(next, b_.GetInsertBlock());
        b_.CreateBr(head);
        b_.SetInsertPoint(done);
    }

    // The loop body becomes `void body(i32 iteration, ptr closure)`; the closure carries every
    // value from the enclosing scope that the body reads.
    void emit_parallel(const For* n) {
        std::vector<const VarNode*> captured_vars, captured_bufs;
        auto capture = [&](const Expr& e) {
            if (auto* v = e.as<VarNode>();
                v && vars_.count(v) && std::find(captured_vars.begin(), captured_vars.end(), v) == captured_vars.end())
                captured_vars.push_back(v);
            auto note_buf = [&](const Var& b) {
                if (buffers_.count(b.get()) &&
                    std::find(captured_bufs.begin(), captured_bufs.end(), b.get()) == captured_bufs.end())
                    captured_bufs.push_back(b.get());
            };
            if (auto* l = e.as<Load>()) note_buf(l->buffer);
        };
        post_order_visit(n->body, capture);
        post_order_visit(n->min, capture);
        struct StoreBufs : IRVisitor {
            std::function<void(const Var&)> f;
            using IRVisitor::visit;
            void visit_store(const Store* s) override {
                f(s->buffer);
                IRVisitor::visit_store(s);
            }
        } sb;
        sb.f = [&](const Var& b) {
            if (buffers_.count(b.get()) &&
                std::find(captured_bufs.begin(), captured_bufs.end(), b.get()) == captured_bufs.end())
                captured_bufs.push_back(b.get());
        };
        sb.visit(n->body);
        std::vector<llvm::Type*> fields;
        for (auto* v : captured_vars) fields.push_back(vars_.at(v)->getType());
        for (size_t i = 0; i < captured_bufs.size(); ++i) fields.push_back(llvm::PointerType::getUnqual(ctx_));
        auto* closure_t = llvm::StructType::get(ctx_, fields);
        // Fill the closure in the caller.
        llvm::IRBuilder<> eb(entry_, entry_->begin());
        auto* closure = eb.CreateAlloca(closure_t);
        for (size_t i = 0; i < captured_vars.size(); ++i)
            b_.CreateStore(vars_.at(captured_vars[i]),
                           b_.CreateStructGEP(closure_t, closure, static_cast<unsigned>(i)));
        for (size_t i = 0; i < captured_bufs.size(); ++i)
            b_.CreateStore(buffers_.at(captured_bufs[i]).ptr,
                           b_.CreateStructGEP(closure_t, closure, static_cast<unsigned>(captured_vars.size() + i)));
        llvm::Value* lo = emit(n->min);
        llvm::Value* extent = emit(n->extent);
        // Build the body with its own scope. The thread pool calls `body(i32, ptr closure)`, which unpacks
        // the closure into a call of `body.inner(i32, vars..., ptr noalias bufs...)`: pointers read from
        // memory carry no aliasing facts, and without `noalias` LLVM could not keep an accumulator tile that
        // lives in an output buffer in registers across a reduction loop.
        auto saved_vars = vars_;
        auto saved_bufs = buffers_;
        // Another function: nothing emitted so far is visible in it.
        auto saved_numbered = std::move(numbered_);
        auto saved_scopes = std::move(numbered_scopes_);
        numbered_.clear();
        numbered_scopes_.clear();
        auto* saved_fn = fn_;
        auto* saved_entry = entry_;
        auto* saved_block = b_.GetInsertBlock();
        auto* ptr_t = llvm::PointerType::getUnqual(ctx_);
        const std::string base = (fn_->getName() + "_" + n->var.name() + "_par").str();
        std::vector<llvm::Type*> inner_params = {b_.getInt32Ty()};
        inner_params.insert(inner_params.end(), fields.begin(), fields.end());
        auto* inner_fn = llvm::Function::Create(llvm::FunctionType::get(b_.getVoidTy(), inner_params, false),
                                                llvm::Function::InternalLinkage, base + ".inner", m_);
        set_attributes(inner_fn);
        for (size_t i = 0; i < captured_bufs.size(); ++i) {
            // Two names for one allocation (storage_reuse) must not be promised distinct.
            llvm::Value* p = saved_bufs.at(captured_bufs[i]).ptr;
            bool unique = true;
            for (size_t j = 0; j < captured_bufs.size(); ++j)
                unique &= j == i || saved_bufs.at(captured_bufs[j]).ptr != p;
            if (unique)
                inner_fn->addParamAttr(static_cast<unsigned>(1 + captured_vars.size() + i), llvm::Attribute::NoAlias);
        }
        auto* body_t = llvm::FunctionType::get(b_.getVoidTy(), {b_.getInt32Ty(), ptr_t}, false);
        auto* body_fn = llvm::Function::Create(body_t, llvm::Function::InternalLinkage, base, m_);
        set_attributes(body_fn);
        begin_function(body_fn);
        std::vector<llvm::Value*> call_args = {body_fn->getArg(0)};
        llvm::Value* cl = body_fn->getArg(1);
        for (size_t i = 0; i < fields.size(); ++i)
            call_args.push_back(b_.CreateLoad(fields[i], b_.CreateStructGEP(closure_t, cl, static_cast<unsigned>(i))));
        b_.CreateCall(inner_fn, call_args);
        b_.CreateRetVoid();

        begin_function(inner_fn);
        for (size_t i = 0; i < captured_vars.size(); ++i)
            vars_[captured_vars[i]] = inner_fn->getArg(static_cast<unsigned>(1 + i));
        for (size_t i = 0; i < captured_bufs.size(); ++i)
            buffers_[captured_bufs[i]].ptr = inner_fn->getArg(static_cast<unsigned>(1 + captured_vars.size() + i));
        llvm::Value* it = b_.CreateIntCast(inner_fn->getArg(0), lo->getType(), true);
        // lo is an outer value: recompute it here from the captured scope.
        vars_[n->var.get()] = b_.CreateAdd(emit(n->min), it);
        emit(n->body);
        b_.CreateRetVoid();
        vars_ = std::move(saved_vars);
        buffers_ = std::move(saved_bufs);
        numbered_ = std::move(saved_numbered);
        numbered_scopes_ = std::move(saved_scopes);
        fn_ = saved_fn;
        entry_ = saved_entry;
        b_.SetInsertPoint(saved_block);
        auto pf = m_.getOrInsertFunction(
                "kiln_parallel_for", llvm::FunctionType::get(b_.getVoidTy(), {ptr_t, ptr_t, b_.getInt32Ty()}, false));
        b_.CreateCall(pf, {body_fn, closure, b_.CreateIntCast(extent, b_.getInt32Ty(), true)});
    }

    // Two operands are one shufflevector, which the backend matches to single permutes (vpermt2ps, vunpcklps);
    // more are laid end to end first.
    llvm::Value* emit_shuffle(const Shuffle* n) {
        std::vector<llvm::Value*> parts;
        for (auto& v : n->vectors) {
            llvm::Value* x = emit(v);
            if (!x->getType()->isVectorTy()) x = b_.CreateVectorSplat(1, x);
            parts.push_back(x);
        }
        while (parts.size() > 2) {
            std::vector<llvm::Value*> joined;
            for (size_t i = 0; i < parts.size(); i += 2) {
                llvm::Value* b = i + 1 < parts.size() ? parts[i + 1] : llvm::PoisonValue::get(parts[i]->getType());
                const int w =
                        static_cast<int>(llvm::cast<llvm::FixedVectorType>(parts[i]->getType())->getNumElements());
                std::vector<int> all(2 * static_cast<size_t>(w));
                for (int k = 0; k < 2 * w; ++k) all[static_cast<size_t>(k)] = k;
                joined.push_back(b_.CreateShuffleVector(parts[i], b, all));
            }
            parts = joined;
        }
        llvm::Value* r = parts.size() == 2 ? b_.CreateShuffleVector(parts[0], parts[1], n->indices)
                                           : b_.CreateShuffleVector(parts[0], n->indices);
        return n->type.lanes == 1 ? b_.CreateExtractElement(r, uint64_t(0)) : r;
    }

    void emit_allocate(const Allocate* n) {
        Expr total = n->extents[0];
        for (size_t i = 1; i < n->extents.size(); ++i) total = total * n->extents[i];
        llvm::Type* et = storage_type(n->dtype);
        auto* c = as_const_int(total);
        const int64_t bytes = c ? *c * std::max(1, n->dtype.bytes()) : -1;
        if (c && bytes <= 64 * 1024) {
            // Constant-size scratch lives in the entry block so LLVM can promote it to registers. An array
            // type rather than a count: SROA skips array allocations, so a counted one stayed in memory
            // through the whole early pipeline (InstCombine rewrites it only later).
            llvm::IRBuilder<> eb(entry_, entry_->begin());
            auto* a = eb.CreateAlloca(llvm::ArrayType::get(et, static_cast<uint64_t>(*c)), nullptr, n->buffer.name());
            a->setAlignment(llvm::Align(64));
            buffers_[n->buffer.get()] = {a, n->dtype};
            emit(n->body);
            return;
        }
        auto* ptr_t = llvm::PointerType::getUnqual(ctx_);
        auto alloc = m_.getOrInsertFunction("kiln_alloc", llvm::FunctionType::get(ptr_t, {b_.getInt64Ty()}, false));
        // Like malloc: fresh memory that nothing else points to.
        if (auto* f = llvm::dyn_cast<llvm::Function>(alloc.getCallee())) f->addRetAttr(llvm::Attribute::NoAlias);
        auto release = m_.getOrInsertFunction("kiln_free", llvm::FunctionType::get(b_.getVoidTy(), {ptr_t}, false));
        llvm::Value* count = b_.CreateSExt(emit(total), b_.getInt64Ty());
        llvm::Value* p = b_.CreateCall(
                alloc, {b_.CreateMul(count, b_.getInt64(static_cast<uint64_t>(std::max(1, n->dtype.bytes()))))});
        buffers_[n->buffer.get()] = {p, n->dtype};
        emit(n->body);
        b_.CreateCall(release, {p});
    }

    llvm::LLVMContext& ctx_;
    llvm::Module& m_;
    llvm::IRBuilder<> b_;
    Target target_;
    llvm::Function* fn_ = nullptr;
    llvm::BasicBlock* entry_ = nullptr;
    std::unordered_map<const VarNode*, llvm::Value*> vars_;
    std::unordered_map<const VarNode*, BufferInfo> buffers_;
    std::unordered_map<ValueKey, llvm::Value*, ValueKeyHash> numbered_;
    std::vector<std::vector<ValueKey>> numbered_scopes_;
};

}  // namespace kiln::codegen
